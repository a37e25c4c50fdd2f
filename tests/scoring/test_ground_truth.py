"""The default resolver: entry at as_of, exit at resolvable_at, only when the tape proves it final."""

from datetime import timedelta

import pytest

from scoring.ground_truth import resolve_ground_truth
from tests.factories import T0, make_feed_record
from tests.scoring.helpers import BAR, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db


def test_entry_is_the_price_models_saw_and_exit_the_bar_closing_at_resolvable_at():
    # Bars open at T0-2m ... ; the bar opening at T0-1m closes at T0 (as_of) with 101.
    make_tape(T0 - 2 * BAR, [100.0, 101.0, 103.0, 104.0, 99.0, 98.0, 97.5, 120.0])
    input_ = make_scoring_input(scheduled_for=T0)  # resolvable at T0+5m: bar opening T0+4m closes then
    truth = resolve_ground_truth(input_)
    assert truth["entry_price"] == 101.0
    assert truth["resolved_price"] == 97.5
    assert truth["return"] == pytest.approx((97.5 - 101.0) / 101.0)
    assert truth["direction_up"] is False
    assert truth["resolved_at"] == (T0 + 5 * BAR).isoformat()


def test_unchanged_price_is_not_up():
    make_tape(T0 - BAR, [100.0] * 7)
    assert resolve_ground_truth(make_scoring_input(scheduled_for=T0))["direction_up"] is False


def test_not_resolvable_before_the_bar_at_the_horizon_has_closed():
    make_tape(T0 - BAR, [100.0, 101.0, 102.0, 103.0, 104.0])  # last bar closes at T0+4m
    assert resolve_ground_truth(make_scoring_input(scheduled_for=T0)) is None


def test_a_gap_at_the_horizon_is_not_resolved_even_with_later_bars():
    # Bars up to the one closing at T0+3m, then nothing until the bar opening at T0+10m.
    make_tape(T0 - BAR, [100.0, 101.0, 102.0, 103.0])
    make_tape(T0 + 10 * BAR, [110.0, 111.0])
    assert resolve_ground_truth(make_scoring_input(scheduled_for=T0)) is None


def test_tick_stream_needs_a_tick_at_or_after_the_horizon(settings):
    settings.FEED_MODE = "poll"  # polled ticks: a price may be up to two polls old (streamed: two seconds)
    dims = {"source": "pyth", "kind": "tick", "granularity": "1s"}
    make_feed_record(**dims, ts_event=T0, values={"price": 50.0})
    make_feed_record(**dims, ts_event=T0 + timedelta(seconds=298), values={"price": 51.0})
    input_ = make_scoring_input(scheduled_for=T0, scope={**make_scope(dims)})
    assert resolve_ground_truth(input_) is None  # nothing proves 51.0 still held at T0+300s
    make_feed_record(**dims, ts_event=T0 + timedelta(seconds=303), values={"price": 52.0})
    truth = resolve_ground_truth(input_)
    assert (truth["entry_price"], truth["resolved_price"], truth["direction_up"]) == (50.0, 51.0, True)


def make_scope(dims):
    return {"source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m", **dims, "scope_key": "k"}


def test_scope_without_feed_dims_is_a_clear_error():
    input_ = make_scoring_input(scheduled_for=T0, scope={"subject": "BTC"})
    with pytest.raises(ValueError, match="lacks feed dims"):
        resolve_ground_truth(input_)
