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
Input expires. The resolver reads the tape only; filling gaps is the feed worker's job.
"""

from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from feeds.dims import FeedDims, granularity_seconds, record_price
from feeds.selectors import TapePrice, price_at, records, stream_cadence

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
    dims = input_dims(input_)
    return _resolve(input_, lambda t: price_at(dims, t), lambda t: tape_covers(dims, t))


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
    """A resolver for these Inputs that reads each stream's tape once (same results as per Input)."""
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

    def resolve(input_):
        try:
            tape = tapes.get(input_dims(input_))
        except ValueError:
            tape = None
        if tape is None:
            return resolve_ground_truth(input_)
        return _resolve(input_, tape.price_at, tape.covers)

    return resolve


def _resolve(input_, price_of, covers) -> dict[str, Any] | None:
    dims = input_dims(input_)
    entry = price_of(input_.as_of or input_.scheduled_for)
    if entry is None:
        return None
    t = input_.resolvable_at
    exit_ = price_of(t)
    if exit_ is None or t - exit_.at >= stream_step(dims) or not covers(t):
        return None
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
    }


resolve_ground_truth.prepare_batch = prepare_batch
