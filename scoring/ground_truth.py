"""Ground truth from the tape (GROUND_TRUTH_RESOLVER default, DESIGN.md §6 and §8).

entry = the price in force at `Input.as_of` (exactly the last price the models saw),
exit  = the price in force at `Input.resolvable_at`.

The exit is accepted only when the tape *proves* it is final:

1. covered: the stream holds a record whose price time (tick: ts_event; candle: ts_event + bar)
   is at or after `resolvable_at`, so the feed has moved past the horizon; and
2. fresh: the exit price is younger than the stream's step at `resolvable_at`
   (`resolvable_at - exit.at < step`), where step is the bar length for candles and
   max(granularity, 2 x FEED_POLL_SECONDS) for ticks (ticks arrive once per poll).

A missing bar or tick at the horizon (a gap) therefore means "not yet": the Input is retried,
a late-arriving (back-filled) price is scored then, and after GROUND_TRUTH_GRACE_SECONDS the
Input expires. The resolver reads the tape only; filling gaps is the feed worker's job.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from feeds.dims import FeedDims, granularity_seconds
from feeds.selectors import TapePrice, price_at, records

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
        seconds = max(seconds, 2 * settings.FEED_POLL_SECONDS)
    return timedelta(seconds=seconds)


def tape_covers(dims: FeedDims, t: datetime) -> bool:
    """True when the stream holds a record whose price time is at or after `t`."""
    if dims.kind == "candle":
        bar = timedelta(seconds=granularity_seconds(dims.granularity))
        return records(dims).filter(ts_event__gte=t - bar).exists()
    return records(dims).filter(ts_event__gte=t).exists()


def final_exit_price(dims: FeedDims, t: datetime) -> TapePrice | None:
    """The exit price at `t` if the tape proves it final (rule above), else None."""
    exit_ = price_at(dims, t)
    if exit_ is None or t - exit_.at >= stream_step(dims):
        return None
    if not tape_covers(dims, t):
        return None
    return exit_


def resolve_ground_truth(input_) -> dict[str, Any] | None:
    """`{entry_price, resolved_price, return, direction_up, ...}` for an Input, or None (not yet)."""
    dims = input_dims(input_)
    entry = price_at(dims, input_.as_of or input_.scheduled_for)
    if entry is None:
        return None
    exit_ = final_exit_price(dims, input_.resolvable_at)
    if exit_ is None:
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
