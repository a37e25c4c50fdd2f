"""The offline sources: a deterministic seeded walk, and CSV replay with documented columns."""

import itertools
import logging
from datetime import timedelta

import pytest
import time_machine

from feeds.providers import ProviderConfigError, get_provider
from feeds.providers.csv_file import CsvProvider
from feeds.providers.synthetic import SyntheticProvider
from tests.factories import T0
from tests.feeds.helpers import dims


def test_the_walk_is_deterministic_for_seed_and_time_whatever_was_asked_before():
    d = dims(kind="tick", granularity="1s")
    one = SyntheticProvider(seed=7)
    two = SyntheticProvider(seed=7)
    two.window(d, T0 - timedelta(days=3), 5)  # a different history of calls
    assert one.window(d, T0 + timedelta(hours=5), 30) == two.window(d, T0 + timedelta(hours=5), 30)
    assert SyntheticProvider(seed=8).window(d, T0, 30) != one.window(d, T0, 30)


def test_the_walk_is_continuous_across_day_hour_and_minute_boundaries():
    d = dims(kind="tick", granularity="1s")
    prices = [r.values["price"] for r in SyntheticProvider(seed=3).window(d, T0 - timedelta(seconds=30), 60)]
    moves = [abs(b / a - 1) for a, b in itertools.pairwise(prices)]
    assert max(moves) < 0.002  # no jump at midnight (T0) beyond a few per-second sigmas


@pytest.mark.parametrize("granularity", ["1s", "1m", "5m", "1h", "1d"])
def test_candles_at_any_granularity_chain_and_are_consistent(granularity):
    bars = SyntheticProvider().window(dims(granularity=granularity), T0, 4)
    for a, b in itertools.pairwise(bars):
        assert a.values["close"] == b.values["open"]
    for r in bars:
        v = r.values
        assert v["low"] <= min(v["open"], v["close"]) <= max(v["open"], v["close"]) <= v["high"]


def test_only_closed_candles_and_past_ticks_are_served():
    provider = SyntheticProvider()
    with time_machine.travel(T0 + timedelta(minutes=2, seconds=30), tick=False):
        [last] = provider.latest(dims())
        bars = provider.fetch(dims(), T0, T0 + timedelta(hours=1), 100)
        ticks = provider.fetch(dims(kind="tick", granularity="1s"), T0, T0 + timedelta(hours=1), 1000)
    assert last.ts_event == T0 + timedelta(minutes=1)
    assert [b.ts_event for b in bars] == [T0, T0 + timedelta(minutes=1)]
    assert ticks[-1].ts_event == T0 + timedelta(minutes=2, seconds=30)


CSV = """ts_event,subject,open,high,low,close,volume
2026-11-02T00:00:00Z,BTC,100,102,99,101,5
1793577660,BTC,101,103,100,102.5,
2026-11-02T00:02:00Z,BTC,101,103,100,not-a-price,1
2026-11-02T00:03:00,BTC,101,103,100,101,1
2026-11-02T00:00:00Z,ETH,10,11,9,10.5,1
"""


def test_csv_replays_candles_rejecting_bad_rows_with_a_reason(tmp_path, caplog):
    path = tmp_path / "btc.csv"
    path.write_text(CSV)
    provider = CsvProvider(str(path))
    with caplog.at_level(logging.WARNING, logger="feeds.providers"):
        records = provider.fetch(dims("csv"), T0, T0 + timedelta(hours=1), 10)
    assert [(r.ts_event, r.values["close"]) for r in records] == [(T0, 101.0), (T0 + timedelta(minutes=1), 102.5)]
    assert "volume" not in records[1].values
    [message] = [r.getMessage() for r in caplog.records]  # one warning for the file, not one per row
    assert "NOT_A_NUMBER x1 (line 4: values.close is not a number: 'not-a-price')" in message
    assert "BAD_TIMESTAMP x1 (line 5: ts_event has no UTC offset" in message
    with time_machine.travel(T0 + timedelta(seconds=90), tick=False):
        assert [r.ts_event for r in provider.latest(dims("csv"))] == [T0 + timedelta(minutes=1)]
    assert [r.values["close"] for r in provider.fetch(dims("csv", "ETH"), T0, T0 + timedelta(hours=1), 10)] == [10.5]


def test_csv_without_a_path_and_unknown_sources_are_clear_errors(settings):
    settings.FEED_CSV_PATH = ""
    with pytest.raises(ProviderConfigError, match="FEED_CSV_PATH"):
        get_provider("csv").latest(dims("csv"))
    with pytest.raises(ProviderConfigError, match="unknown FEED_SOURCE 'kraken'"):
        get_provider("kraken")
