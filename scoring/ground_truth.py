"""Ground truth from the tape (GROUND_TRUTH_RESOLVER default, DESIGN.md §6 and §8).

entry = the price in force at `Input.as_of` (exactly the last price the models saw),
exit  = the price in force at `Input.resolvable_at`.

The exit is accepted only when the tape *proves* it is final:

1. covered: the stream holds a record whose price time (tick: ts_event; candle: ts_event + bar)
   is at or after `resolvable_at`, so the feed has moved past the horizon; and
2. fresh: the exit price is younger than the stream's step at `resolvable_at`
   (`resolvable_at - exit.at < step`), where step is the bar length for candles and
   max(granularity, 2 x the stream's cadence) for ticks (`feeds.selectors.stream_cadence`: one
   record per granularity when streamed, one per poll when polled).

A missing bar or tick at the horizon (a gap) therefore means "not yet": the Input is retried,
a late-arriving (back-filled) price is scored then, and after GROUND_TRUTH_GRACE_SECONDS the
Input expires.

Tape-first recovery: when the tape lacks a price the ground truth needs (the entry, or a final
exit) and the feed has had time to deliver it, the resolver asks the stream's provider for that
window -- once per stream per score batch, time-boxed (GROUND_TRUTH_FETCH_TIMEOUT_SECONDS, all of
a batch's asks over by half its lease), a stream at most once per
GROUND_TRUTH_FETCH_INTERVAL_SECONDS across workers, only for GROUND_TRUTH_FETCH_SOURCES with history
configured -- stores what it gets through the ingest path (`feeds.services.fetch_gap`) and
resolves from the tape again. A provider that is down costs the time box and leaves the Input to
the rule above (retried, then expired after the grace).
"""

import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from feeds.dims import FeedDims, granularity_seconds, record_price
from feeds.providers import history_available
from feeds.selectors import TapePrice, price_at, records, stream_cadence
from feeds.services import GapFetch, fetch_gap

SCOPE_DIMS = ("source", "subject", "kind", "granularity")


def input_dims(input_) -> FeedDims:
    """The feed stream an Input was built from (`Input.scope` holds the four dims)."""
    scope = input_.scope or {}
    missing = [key for key in SCOPE_DIMS if not scope.get(key)]
    if missing:
        raise ValueError(f"Input {input_.pk} scope lacks feed dims {missing}")
    return FeedDims(*(str(scope[key]) for key in SCOPE_DIMS))


def stream_step(dims: FeedDims) -> timedelta:
    """How old the exit price may be: one bar for candles, one poll gap for ticks."""
    seconds = float(granularity_seconds(dims.granularity))
    if dims.kind != "candle":
        seconds = max(seconds, 2 * stream_cadence(dims).total_seconds())
    return timedelta(seconds=seconds)


def tape_covers(dims: FeedDims, t: datetime) -> bool:
    """True when the stream holds a record whose price time is at or after `t`."""
    if dims.kind == "candle":
        bar = timedelta(seconds=granularity_seconds(dims.granularity))
        return records(dims).filter(ts_event__gte=t - bar).exists()
    return records(dims).filter(ts_event__gte=t).exists()


def resolve_ground_truth(input_) -> dict[str, Any] | None:
    """`{entry_price, resolved_price, return, direction_up, ...}` for an Input, or None (not yet)."""
    return _resolve_from_db(input_, GapRecovery())


def _resolve_from_db(input_, recovery: "GapRecovery") -> dict[str, Any] | None:
    dims = input_dims(input_)
    truth, gap = _assess(input_, lambda t: price_at(dims, t), lambda t: tape_covers(dims, t))
    if gap is not None and recovery.wants(dims, gap) and recovery.fetch(dims, [gap]).written:
        truth, gap = _assess(input_, lambda t: price_at(dims, t), lambda t: tape_covers(dims, t))
    return truth


# --- Tape-first recovery ------------------------------------------------------------------


def recovery_settle(dims: FeedDims) -> timedelta:
    """How long after a price time the feed has had to deliver it: one step plus one cadence.

    Before that a gap is the feed's normal lag (the next poll or bar brings it), not worth a fetch."""
    return stream_step(dims) + stream_cadence(dims)


def gap_window(dims: FeedDims, first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """The [start, end) of ts_event to ask for so that prices timed `first` .. `last` are on the tape:
    records whose price time lies within one step either side (a fresh price at or before each time,
    and one at or after it, which proves the exit final). At most one page (FEED_PAGE_SIZE records)
    from `start`: a wider span is fetched oldest first, one page per batch."""
    step = stream_step(dims)
    grain = timedelta(seconds=granularity_seconds(dims.granularity))
    bar = grain if dims.kind == "candle" else timedelta(0)  # a candle's price time is its close
    start = first - step - bar
    end = min(last + step - bar, start + settings.FEED_PAGE_SIZE * grain) + timedelta(microseconds=1)
    return start, end


class GapRecovery:
    """One score batch's asks for prices missing from the tape: at most one per stream, each within
    GROUND_TRUTH_FETCH_TIMEOUT_SECONDS, and none still running after half the batch's lease (the
    other half is left to resolve and write), so a fetch never outlives the lease."""

    def __init__(self) -> None:
        self.asked: dict[FeedDims, GapFetch] = {}
        self.ends_at = time.monotonic() + settings.SCORE_LEASE_SECONDS / 2

    def wants(self, dims: FeedDims, t: datetime) -> bool:
        """True when the price at `t` may be asked for: fetching is on for this source, its history
        is configured, the stream was not asked yet in this batch, and the feed had time to deliver it."""
        return (
            settings.GROUND_TRUTH_FETCH_TIMEOUT_SECONDS > 0
            and dims not in self.asked
            and dims.source in {source.strip() for source in settings.GROUND_TRUTH_FETCH_SOURCES}
            and history_available(dims.source)
            and t <= timezone.now() - recovery_settle(dims)
        )

    def fetch(self, dims: FeedDims, times: Iterable[datetime]) -> GapFetch:
        """Ask once for the window around `times` (see `gap_window`); stored through the ingest path."""
        times = list(times)
        start, end = gap_window(dims, min(times), max(times))
        timeout = min(settings.GROUND_TRUTH_FETCH_TIMEOUT_SECONDS, self.ends_at - time.monotonic())
        outcome = self.asked[dims] = fetch_gap(dims=dims, start=start, end=end, timeout=timeout)
        return outcome


# --- Batch resolution ---------------------------------------------------------------------
# The score worker resolves a claimed batch at once: `prepare_batch(inputs)` reads each
# stream's tape around the batch in one query and returns a resolver with the same rule and
# result as `resolve_ground_truth`, answered from memory (falling back to the per-Input reads
# when a price lies outside the loaded range). A custom resolver may offer the same hook.

MAX_PRELOAD_SPAN = timedelta(hours=24)


class _Tape:
    """One stream's records in [lo, hi], sorted, with price times."""

    def __init__(self, dims: FeedDims, lo: datetime, hi: datetime) -> None:
        self.dims = dims
        self.lo, self.hi = lo, hi
        bar = timedelta(seconds=granularity_seconds(dims.granularity)) if dims.kind == "candle" else timedelta(0)
        rows = records(dims).filter(ts_event__gte=lo, ts_event__lte=hi).order_by("ts_event")
        self.points: list[tuple[datetime, float | None, int]] = [
            (ts + bar, record_price(dims.kind, values), pk)
            for ts, values, pk in rows.values_list("ts_event", "values", "id")
        ]
        self.times = [p[0] for p in self.points]
        self.beyond = records(dims).filter(ts_event__gt=hi).exists()
        self.bar = bar

    def price_at(self, t: datetime) -> TapePrice | None:
        i = bisect_right(self.times, t)
        if i == 0 or self.times[i - 1] - self.bar < self.lo:
            return price_at(self.dims, t)  # the price in force is older than the loaded range
        at, price, pk = self.points[i - 1]
        return None if price is None else TapePrice(price=price, at=at, record_id=pk)

    def covers(self, t: datetime) -> bool:
        if t > self.hi + self.bar:
            return tape_covers(self.dims, t)
        return self.beyond or (bool(self.times) and self.times[-1] >= t)


def prepare_batch(inputs) -> Callable[[Any], dict[str, Any] | None]:
    """A resolver for these Inputs that reads each stream's tape once (same results as per Input).

    Prices the tape lacks are asked for first: one fetch per stream for all of the batch's gaps on
    it (`GapRecovery`), after which that stream's tape is read again."""
    recovery = GapRecovery()
    spans: dict[FeedDims, list[datetime]] = {}
    for input_ in inputs:
        try:
            dims = input_dims(input_)
        except ValueError:
            continue
        bounds = spans.setdefault(dims, [input_.as_of or input_.scheduled_for, input_.resolvable_at])
        bounds[0] = min(bounds[0], input_.as_of or input_.scheduled_for)
        bounds[1] = max(bounds[1], input_.resolvable_at)
    tapes = {}
    for dims, (lo, hi) in spans.items():
        step = stream_step(dims)
        if hi - lo <= MAX_PRELOAD_SPAN:
            tapes[dims] = _Tape(dims, lo - 2 * step, hi + step)
    # Resolved once here (kept for the score worker's call), so that each stream's gaps are known
    # before anything is asked: one fetch covers all of them.
    known: dict[int, tuple[FeedDims, dict[str, Any] | None]] = {}
    gaps: dict[FeedDims, list[datetime]] = {}
    for input_ in inputs:
        try:
            dims = input_dims(input_)
            tape = tapes.get(dims)
            if tape is None:
                continue
            truth, gap = _assess(input_, tape.price_at, tape.covers)
        except Exception:  # noqa: S112 - raised again, for this Input alone, when it is resolved
            continue
        known[input_.pk] = (dims, truth)
        if gap is not None and recovery.wants(dims, gap):
            gaps.setdefault(dims, []).append(gap)
    for dims, times in gaps.items():
        if recovery.fetch(dims, times).written:
            tapes[dims] = _Tape(dims, tapes[dims].lo, tapes[dims].hi)

    def resolve(input_):
        done = known.get(input_.pk)
        if done is not None and done[0] not in gaps:
            return done[1]
        try:
            tape = tapes.get(input_dims(input_))
        except ValueError:
            tape = None
        if tape is None:
            return _resolve_from_db(input_, recovery)
        return _resolve(input_, tape.price_at, tape.covers)

    return resolve


def _resolve(input_, price_of, covers) -> dict[str, Any] | None:
    return _assess(input_, price_of, covers)[0]


def _assess(input_, price_of, covers) -> tuple[dict[str, Any] | None, datetime | None]:
    """(ground truth, None), or (None, the time whose price the tape lacks: the entry's, or the exit's
    when there is none, it is stale or not yet proven final)."""
    dims = input_dims(input_)
    as_of = input_.as_of or input_.scheduled_for
    entry = price_of(as_of)
    if entry is None:
        return None, as_of
    t = input_.resolvable_at
    exit_ = price_of(t)
    if exit_ is None or t - exit_.at >= stream_step(dims) or not covers(t):
        return None, t
    if entry.price == 0:
        raise ValueError(f"entry price is 0 at {entry.at.isoformat()} (record {entry.record_id})")
    return {
        "entry_price": entry.price,
        "resolved_price": exit_.price,
        "return": (exit_.price - entry.price) / abs(entry.price),
        "direction_up": exit_.price > entry.price,
        "entry_at": entry.at.isoformat(),
        "resolved_at": exit_.at.isoformat(),
        "entry_record_id": entry.record_id,
        "resolved_record_id": exit_.record_id,
    }, None


resolve_ground_truth.prepare_batch = prepare_batch
