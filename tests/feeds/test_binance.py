"""Binance through python-binance against recorded REST bodies on a local server (BINANCE_API_URL)."""

import logging
from datetime import timedelta

import pytest
import time_machine

from feeds.models import FeedRecord
from feeds.providers import ProviderRateLimited, ProviderUnavailable
from feeds.providers.base import collect_rejections
from feeds.providers.binance import BinanceProvider, symbol_for
from feeds.services import fill_range, ingest_records
from tests.factories import T0
from tests.feeds.helpers import T0_S, body, dims

CANDLE = dims("binance", "BTC", "candle", "1m")
JSON = "application/json"


@pytest.fixture
def binance(settings, httpserver):
    settings.BINANCE_API_URL = httpserver.url_for("/api")
    return BinanceProvider()


def expect_klines(httpserver, ordered=True, **query):
    if not ordered:  # any klines request
        return httpserver.expect_request("/api/v3/klines")
    query = {"symbol": "BTCUSDT", "interval": "1m", **{k: str(v) for k, v in query.items()}}
    return httpserver.expect_ordered_request("/api/v3/klines", query_string=query)


def test_the_client_is_built_without_a_network_call(settings, httpserver):
    settings.BINANCE_API_URL = httpserver.url_for("/api")
    BinanceProvider()
    assert httpserver.log == []


def test_subjects_map_to_symbols():
    assert symbol_for("BTC") == "BTCUSDT"
    assert symbol_for("ethbtc") == "ETHBTC"
    assert symbol_for("BTCUSDC") == "BTCUSDC"


@pytest.mark.django_db
def test_a_forming_candle_is_never_stored(binance, httpserver):
    with time_machine.travel(T0 + timedelta(minutes=2, seconds=30), tick=False):
        expect_klines(httpserver, limit=2).respond_with_data(body("binance_klines_1m_page1.json"), content_type=JSON)
        records = binance.latest(CANDLE)
        ingest_records(records)
    # The fixture's last bar opened at T0+2m and closes at T0+2m59.999s: still forming at T0+2m30s.
    assert [r.ts_event for r in records] == [T0 + timedelta(minutes=1)]
    assert list(FeedRecord.objects.values_list("ts_event", flat=True)) == [T0 + timedelta(minutes=1)]
    assert records[0].values == {"open": 68402.1, "high": 68407.1, "low": 68399.1, "close": 68403.6, "volume": 12.34567}


@pytest.mark.django_db
def test_history_is_paginated_with_start_and_end_time(binance, httpserver):
    end_ms = (T0_S + 300) * 1000 - 1
    expect_klines(httpserver, startTime=T0_S * 1000, endTime=end_ms, limit=3).respond_with_data(
        body("binance_klines_1m_page1.json"), content_type=JSON
    )
    expect_klines(httpserver, startTime=(T0_S + 180) * 1000, endTime=end_ms, limit=3).respond_with_data(
        body("binance_klines_1m_page2.json"), content_type=JSON
    )
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        fill = fill_range(
            dims=CANDLE, provider=binance, start=T0, end=T0 + timedelta(minutes=5), max_pages=10, page_size=3
        )
    assert fill.complete
    assert fill.pages == 2
    assert fill.written == 5
    assert FeedRecord.objects.filter(source="binance").count() == 5
    httpserver.check_assertions()


def test_each_granularity_uses_its_real_interval_including_1s(binance, httpserver):
    httpserver.expect_request(
        "/api/v3/klines",
        query_string={
            "symbol": "BTCUSDT",
            "interval": "1s",
            "startTime": str(T0_S * 1000),
            "endTime": str((T0_S + 3) * 1000 - 1),
            "limit": "10",
        },
    ).respond_with_data(body("binance_klines_1s.json"), content_type=JSON)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        records = binance.fetch(dims("binance", "BTC", "candle", "1s"), T0, T0 + timedelta(seconds=3), 10)
    assert [r.ts_event for r in records] == [T0 + timedelta(seconds=i) for i in range(3)]


def test_an_empty_page_returns_nothing(binance, httpserver):
    expect_klines(httpserver, ordered=False).respond_with_data("[]", content_type=JSON)
    assert binance.fetch(CANDLE, T0, T0 + timedelta(minutes=5), 3) == []


def test_429_carries_the_servers_retry_after(binance, httpserver):
    expect_klines(httpserver, ordered=False).respond_with_data(
        body("binance_error_429.json"), status=429, headers={"Retry-After": "31"}, content_type=JSON
    )
    with pytest.raises(ProviderRateLimited) as caught:
        binance.fetch(CANDLE, T0, T0 + timedelta(minutes=5), 3)
    assert caught.value.retry_after == 31


def test_500_and_malformed_json_are_transient_errors(binance, httpserver):
    expect_klines(httpserver, ordered=False).respond_with_data("<html>bad gateway</html>", status=502)
    with pytest.raises(ProviderUnavailable, match="HTTP 502"):
        binance.fetch(CANDLE, T0, T0 + timedelta(minutes=5), 3)
    httpserver.clear()
    expect_klines(httpserver, ordered=False).respond_with_data('[[1793577600000, "684', content_type=JSON)
    with pytest.raises(ProviderUnavailable, match="malformed"):
        binance.fetch(CANDLE, T0, T0 + timedelta(minutes=5), 3)


def test_garbage_klines_are_rejected_and_good_ones_kept(binance, httpserver, caplog):
    expect_klines(httpserver, ordered=False).respond_with_data(body("binance_klines_garbage.json"), content_type=JSON)
    with caplog.at_level(logging.WARNING, logger="feeds.providers"), time_machine.travel(T0 + timedelta(hours=1)):
        records = binance.fetch(CANDLE, T0, T0 + timedelta(minutes=5), 10)
    assert [r.ts_event for r in records] == [T0]
    [message] = [r.getMessage() for r in caplog.records if "record(s) from binance" in r.getMessage()]
    assert message.startswith("rejected 2 of 3 record(s) from binance:")
    assert "NOT_A_NUMBER x1 (values.open is not a number: 'abc')" in message
    assert "MALFORMED x1 (kline is not a 12-field array" in message


def test_ticks_come_from_the_symbol_ticker(binance, httpserver):
    httpserver.expect_request("/api/v3/ticker/price", query_string={"symbol": "BTCUSDT"}).respond_with_data(
        body("binance_ticker_btcusdt.json"), content_type=JSON
    )
    with time_machine.travel(T0 + timedelta(seconds=7, microseconds=400), tick=False):
        [record] = binance.latest(dims("binance", "BTC", "tick", "1s"))
    assert record.values == {"price": 68512.34}
    assert record.ts_event == T0 + timedelta(seconds=7)


def test_klines_with_prices_that_are_no_prices_are_rejected_and_the_good_ones_kept(binance, httpserver):
    def kline(minute, o="100", h="101", low="99", c="100.5", v="1.5"):
        opened = (T0_S + 60 * minute) * 1000
        return [opened, o, h, low, c, v, opened + 59_999, "0", 1, "0", "0", "0"]

    rows = [
        kline(0),
        kline(1, low="0", o="0"),  # a zero price
        kline(2, o="-1", low="-2"),  # negative
        kline(3, h="1e308"),  # beyond MAX_PRICE
        kline(4, v="-3"),  # a negative volume
        kline(5, c="100\x00"),  # NUL
        kline(6, v="0"),  # a zero volume is fine
    ]
    expect_klines(httpserver, ordered=False).respond_with_json(rows)
    with collect_rejections() as rejected, time_machine.travel(T0 + timedelta(hours=1)):
        records = binance.fetch(CANDLE, T0, T0 + timedelta(minutes=10), 10)
    assert [r.ts_event for r in records] == [T0, T0 + timedelta(minutes=6)]
    assert dict(rejected.counts) == {"OUT_OF_RANGE": 4, "UNSTORABLE_TEXT": 1}
