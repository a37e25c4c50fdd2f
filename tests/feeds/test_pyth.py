"""Pyth against recorded Hermes and TradingView-UDF bodies served over loopback (no internet)."""

import logging
from datetime import timedelta

import pytest
import time_machine

from feeds.models import FeedRecord
from feeds.providers import ProviderConfigError, ProviderRateLimited, ProviderUnavailable
from feeds.providers.base import collect_rejections
from feeds.providers.pyth import PythProvider, feed_id
from feeds.services import fill_range
from tests.factories import T0
from tests.feeds.helpers import BTC_FEED_ID, T0_S, body, dims

TICK = dims("pyth", "BTC", "tick", "1s")
CANDLE = dims("pyth", "BTC", "candle", "1m")


@pytest.fixture
def pyth(settings, httpserver):
    settings.PYTH_HERMES_URL = httpserver.url_for("/")
    settings.PYTH_HISTORY_URL = httpserver.url_for("/udf")
    settings.PYTH_API_KEY = "test-key"
    settings.PYTH_HISTORY_TOKEN = "history-token"
    return PythProvider()


def expect_latest(httpserver, **kwargs):
    return httpserver.expect_request(
        "/v2/updates/price/latest",
        query_string={"ids[]": BTC_FEED_ID, "parsed": "true"},
        headers={"Authorization": "Bearer test-key"},
        **kwargs,
    )


def test_latest_scales_price_by_negative_expo_and_stamps_publish_time(pyth, httpserver):
    expect_latest(httpserver).respond_with_data(body("hermes_latest_btc.json"), content_type="application/json")
    [record] = pyth.latest(TICK)
    assert record.values["price"] == pytest.approx(68523.12345678)  # 6852312345678 x 10^-8
    assert record.values["conf"] == pytest.approx(32.45678901)
    assert record.ts_event == T0 + timedelta(seconds=5)
    assert (record.source, record.subject, record.kind) == ("pyth", "BTC", "tick")
    assert record.meta["slot"] == 218765432


def test_latest_with_an_empty_page_returns_nothing(pyth, httpserver):
    expect_latest(httpserver).respond_with_data(body("hermes_latest_empty.json"), content_type="application/json")
    assert pyth.latest(TICK) == []


def test_missing_api_key_is_one_clear_error_naming_the_setting_and_sends_nothing(pyth, settings, httpserver):
    settings.PYTH_API_KEY = ""
    with pytest.raises(ProviderConfigError, match="PYTH_API_KEY"):
        pyth.latest(TICK)
    assert httpserver.log == []


def test_429_carries_the_servers_retry_after(pyth, httpserver):
    expect_latest(httpserver).respond_with_data("Too Many Requests", status=429, headers={"Retry-After": "17"})
    with pytest.raises(ProviderRateLimited) as caught:
        pyth.latest(TICK)
    assert caught.value.retry_after == 17


def test_500_is_a_transient_error(pyth, httpserver):
    expect_latest(httpserver).respond_with_data("upstream exploded", status=500)
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        pyth.latest(TICK)


def test_malformed_json_is_a_transient_error(pyth, httpserver):
    expect_latest(httpserver).respond_with_data(body("hermes_malformed.txt"), content_type="application/json")
    with pytest.raises(ProviderUnavailable, match="malformed JSON"):
        pyth.latest(TICK)


def test_garbage_records_are_rejected_one_by_one_and_good_ones_kept(pyth, httpserver, caplog):
    expect_latest(httpserver).respond_with_data(body("hermes_latest_garbage.json"), content_type="application/json")
    with caplog.at_level(logging.WARNING, logger="feeds.providers"):
        records = pyth.latest(TICK)
    assert [r.values["price"] for r in records] == [pytest.approx(68524.0)]
    [joined] = [r.getMessage() for r in caplog.records if "record(s) from pyth" in r.getMessage()]
    assert joined.startswith("rejected 4 of 5 record(s) from pyth:")
    assert "KeyError: 'price'" in joined  # missing field
    assert "NOT_A_NUMBER x1 (price is not a number: 'not-a-number')" in joined
    assert "NON_FINITE_NUMBER x1 (values.price is nan)" in joined
    assert "publish_time is not an integer" in joined


def test_feed_ids_are_real_and_overridable(settings):
    assert feed_id("btc") == BTC_FEED_ID
    assert feed_id("ETH") == "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"
    settings.PYTH_FEED_IDS = {"DOGE": "0xABC"}
    assert feed_id("DOGE") == "abc"
    with pytest.raises(ProviderConfigError, match="PYTH_FEED_IDS"):
        feed_id("NOPE")


def expect_history(httpserver, start, end, resolution="1"):
    return httpserver.expect_ordered_request(
        "/udf/history",
        query_string={"symbol": "Crypto.BTC/USD", "resolution": resolution, "from": str(start), "to": str(end)},
        headers={"Authorization": "Bearer history-token"},
    )


@pytest.mark.django_db
def test_history_is_paginated_into_the_tape_across_pages(pyth, httpserver):
    expect_history(httpserver, T0_S, T0_S + 179).respond_with_data(
        body("udf_history_page1.json"), content_type="application/json"
    )
    expect_history(httpserver, T0_S + 180, T0_S + 299).respond_with_data(
        body("udf_history_page2.json"), content_type="application/json"
    )
    fill = fill_range(dims=CANDLE, provider=pyth, start=T0, end=T0 + timedelta(minutes=5), max_pages=10, page_size=3)
    assert fill.complete
    assert fill.pages == 2
    assert fill.written == 5
    stored = list(FeedRecord.objects.order_by("ts_event").values_list("ts_event", "values"))
    assert [t for t, _ in stored] == [T0 + timedelta(minutes=i) for i in range(5)]
    assert stored[0][1] == {"open": 68500.0, "high": 68504.0, "low": 68498.0, "close": 68501.25, "volume": 0.0}
    httpserver.check_assertions()


def test_history_follows_no_data_next_time_and_stops_on_plain_no_data(pyth, httpserver):
    expect_history(httpserver, T0_S - 180, T0_S - 1).respond_with_data(
        body("udf_history_no_data.json"), content_type="application/json"
    )
    expect_history(httpserver, T0_S + 180, T0_S + 299).respond_with_data(
        body("udf_history_page2.json"), content_type="application/json"
    )
    records = pyth.fetch(CANDLE, T0 - timedelta(minutes=3), T0 + timedelta(minutes=5), 3)
    assert [r.ts_event for r in records] == [T0 + timedelta(minutes=3), T0 + timedelta(minutes=4)]
    httpserver.check_assertions()


def test_history_for_ticks_stamps_bar_closes_at_the_bar_end(pyth, httpserver):
    expect_history(httpserver, T0_S - 60, T0_S + 119).respond_with_data(
        body("udf_history_page1.json"), content_type="application/json"
    )
    records = pyth.fetch(dims("pyth", "BTC", "tick", "1m"), T0, T0 + timedelta(minutes=3), 3)
    # The bar opening at T0 closes at T0+1m: its close is the price in force then, not at T0.
    assert next((r.ts_event, r.values["price"]) for r in records) == (T0 + timedelta(minutes=1), 68501.25)


def test_history_error_status_and_missing_url(pyth, settings, httpserver):
    expect_history(httpserver, T0_S, T0_S + 179).respond_with_data(
        body("udf_history_error.json"), content_type="application/json"
    )
    with pytest.raises(ProviderUnavailable, match="Unknown symbol"):
        pyth.fetch(CANDLE, T0, T0 + timedelta(minutes=3), 3)
    settings.PYTH_HISTORY_URL = ""
    with pytest.raises(ProviderConfigError, match="PYTH_HISTORY_URL"):
        pyth.fetch(CANDLE, T0, T0 + timedelta(minutes=3), 3)


def test_latest_candle_comes_from_history_and_is_closed(pyth, httpserver):
    with time_machine.travel(T0 + timedelta(minutes=3, seconds=20), tick=False):
        expect_history(httpserver, T0_S, T0_S + 179).respond_with_data(
            body("udf_history_page1.json"), content_type="application/json"
        )
        [record] = pyth.latest(CANDLE)
    assert record.ts_event == T0 + timedelta(minutes=2)


def hermes_update(price: str, expo: int = -8, slot=1, publish_time: int = T0_S + 5) -> dict:
    return {
        "id": BTC_FEED_ID,
        "price": {"price": price, "conf": "100", "expo": expo, "publish_time": publish_time},
        "metadata": {"slot": slot},
    }


def test_hermes_prices_that_are_no_prices_are_rejected_with_their_reason(pyth, httpserver):
    updates = [
        hermes_update("0"),
        hermes_update("-6852312345678"),
        hermes_update("1", expo=308),  # 1e308
        hermes_update("1", expo=10**9),
        hermes_update("6852\x0012345678"),
        hermes_update("9" * 100),
        hermes_update("6852312345678", slot="\ud800"),
        hermes_update("6852312345678", publish_time=T0_S + 6),  # the one good update
    ]
    expect_latest(httpserver).respond_with_json({"parsed": updates})
    with collect_rejections() as rejected:
        records = pyth.latest(TICK)
    assert [(r.ts_event, r.values["price"]) for r in records] == [(T0 + timedelta(seconds=6), 68523.12345678)]
    assert dict(rejected.counts) == {"OUT_OF_RANGE": 4, "UNSTORABLE_TEXT": 2, "TOO_LARGE": 1}
