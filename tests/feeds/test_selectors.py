"""Tape-first reads: price_at edge cases, newest-n oldest-first, provider fallback on a miss."""

import logging
from datetime import timedelta

import pytest
import time_machine

from feeds.models import FeedRecord
from feeds.providers.synthetic import SyntheticProvider
from feeds.selectors import latest, latest_values, price_at, price_at_or_fetch, window
from tests.factories import T0, make_feed_record
from tests.feeds.helpers import dims

pytestmark = pytest.mark.django_db

TICK = dims("synthetic", "BTC", "tick", "1s")
CANDLE = dims("synthetic", "BTC", "candle", "1m")
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def tick(t, price):
    return make_feed_record(kind="tick", granularity="1s", ts_event=t, values={"price": price})


def bar(t, close):
    return make_feed_record(ts_event=t, values={"open": 1, "high": 999, "low": 0, "close": close})


def test_tick_price_at_exact_time_between_ticks_and_before_the_first():
    first, second = tick(T0, 100.0), tick(T0 + 10 * S, 101.0)
    assert price_at(TICK, T0).price == 100.0  # exact timestamp
    assert price_at(TICK, T0).at == T0
    assert price_at(TICK, T0).record_id == first.id
    assert price_at(TICK, T0 + 5 * S).price == 100.0  # between ticks: the last at or before
    assert price_at(TICK, T0 + 10 * S).record_id == second.id
    assert price_at(TICK, T0 - S) is None  # before the first record


def test_candle_price_is_the_close_of_the_last_bar_that_ended():
    bar(T0, 100.5)
    bar(T0 + M, 102.0)
    assert price_at(CANDLE, T0 + 59 * S) is None  # the first bar has not ended yet
    at_end = price_at(CANDLE, T0 + M)  # exactly at the first bar's close
    assert (at_end.price, at_end.at) == (100.5, T0 + M)
    assert price_at(CANDLE, T0 + M + 30 * S).price == 100.5  # inside the second bar
    assert price_at(CANDLE, T0 + 2 * M).price == 102.0
    # The same timestamps read as ticks would be a different stream: candle and tick never mix.
    assert price_at(TICK, T0 + 2 * M) is None


def test_latest_returns_the_newest_n_oldest_first_and_window_is_ascending():
    for i in (3, 0, 4, 1, 2):
        bar(T0 + i * M, 100 + i)
    assert [r.values["close"] for r in latest(CANDLE, 2)] == [103, 104]
    assert [r.values["close"] for r in latest(CANDLE, 2, until=T0 + 2 * M)] == [101, 102]
    assert [r.ts_event for r in window(CANDLE, T0 + M, T0 + 3 * M)] == [T0 + M, T0 + 2 * M]


def test_latest_values_are_the_rows_of_latest_as_pairs():
    # Microseconds, a pre-1970 and a far-future time, nested values: the same pairs as `latest`.
    for t in (T0 + timedelta(microseconds=1), T0 + 2 * S + timedelta(microseconds=999_999), T0 + 3 * S):
        make_feed_record(kind="tick", granularity="1s", ts_event=t, values={"price": 1.5, "meta": {"x": [1, "é"]}})
    tick(T0 - timedelta(days=365 * 60), 7.0)
    tick(T0 + 10 * S, 8.0)
    for n, until in ((3, T0 + 3 * S), (10, T0 + 3 * S), (1, T0 + 3 * S - timedelta(microseconds=1)), (5, T0 - S)):
        expected = [(r.ts_event, r.values) for r in latest(TICK, n, until=until)]
        assert latest_values(TICK, n, until=until) == expected
    assert latest_values(TICK, 2, until=T0 - timedelta(days=366 * 60)) == []


def test_a_miss_asks_the_provider_once_and_stores_what_it_returns(caplog):
    t = T0 + 5 * M + 20 * S
    with time_machine.travel(T0 + timedelta(hours=1), tick=False), caplog.at_level(logging.INFO, logger="feeds"):
        found = price_at_or_fetch(CANDLE, t)
        again = price_at_or_fetch(CANDLE, t)
    expected = SyntheticProvider().record_at(CANDLE, int((T0 + 4 * M).timestamp())).values["close"]
    assert (found.price, found.at) == (expected, T0 + 5 * M)
    assert again == found
    assert FeedRecord.objects.count() == 9  # the lookback page (bars opening in [t-10 bars, t-1 bar]), stored
    asked = [r.getMessage() for r in caplog.records if "gap fetch" in r.getMessage()]
    assert len(asked) == 1
    assert "stored 9 record(s)" in asked[0]


def test_a_tape_hit_never_calls_the_provider(django_assert_num_queries):
    tick(T0, 100.0)
    with django_assert_num_queries(1):
        assert price_at_or_fetch(TICK, T0 + S).price == 100.0
