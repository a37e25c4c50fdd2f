"""The live loop: back-fill after a stall, poll, and back off (never storm) when the provider fails."""

import subprocess
from datetime import timedelta

import pytest
import time_machine

from coordinator_site.models import WorkerHeartbeat
from feeds.models import FeedIngestionState, FeedRecord
from feeds.providers.pyth import PythProvider
from feeds.providers.synthetic import SyntheticProvider
from feeds.services import ingest_records, poll_stream
from tests.factories import T0
from tests.feeds.helpers import BTC_FEED_ID, body, dims

pytestmark = pytest.mark.django_db

TICKS = dims("synthetic", "BTC", "tick", "1s")
PYTH = dims("pyth", "BTC", "tick", "1s")


def state(d):
    return FeedIngestionState.objects.get(**d.as_filter())


def test_a_worker_stalled_for_ten_minutes_back_fills_the_gap_on_its_next_pass(settings):
    settings.FEED_PAGE_SIZE = 500  # the 600 s gap needs two pages
    provider = SyntheticProvider()
    with time_machine.travel(T0, tick=False) as clock:
        poll_stream(dims=TICKS, provider=provider)
        ingest_records(provider.latest(TICKS))
        assert state(TICKS).last_event_ts == T0
        clock.move_to(T0 + timedelta(minutes=10))
        outcome = poll_stream(dims=TICKS, provider=provider)
    assert outcome.error == ""
    assert outcome.caught_up
    assert outcome.counts["backfill_pages"] == 3  # 500 + 100, then an empty page says "caught up"
    stamps = list(FeedRecord.objects.filter(ts_event__gte=T0).order_by("ts_event").values_list("ts_event", flat=True))
    assert stamps == [T0 + timedelta(seconds=s) for s in range(601)]  # every second, no hole
    assert state(TICKS).last_event_ts == T0 + timedelta(minutes=10)
    assert state(TICKS).next_poll_at == T0 + timedelta(minutes=10, seconds=settings.FEED_POLL_SECONDS)


def test_a_fresh_tape_back_fills_feed_backfill_minutes(settings):
    settings.FEED_BACKFILL_MINUTES = 30
    candles = dims("synthetic", "BTC", "candle", "1m")
    with time_machine.travel(T0 + timedelta(seconds=10), tick=False):
        poll_stream(dims=candles, provider=SyntheticProvider())
    stamps = list(FeedRecord.objects.order_by("ts_event").values_list("ts_event", flat=True))
    # From now-30min (first whole minute after it) to the last closed bar (T0-1m).
    assert stamps[0] == T0 - timedelta(minutes=29)
    assert stamps[-1] == T0 - timedelta(minutes=1)
    assert len(stamps) == 29


def test_a_poll_between_stalls_only_asks_latest(settings, httpserver):
    settings.PYTH_HERMES_URL, settings.PYTH_API_KEY = httpserver.url_for("/"), "k"
    settings.PYTH_HISTORY_URL = httpserver.url_for("/udf")
    httpserver.expect_request("/v2/updates/price/latest").respond_with_data(
        body("hermes_latest_btc.json"), content_type="application/json"
    )
    FeedIngestionState.objects.create(**PYTH.as_filter(), last_event_ts=T0)
    with time_machine.travel(T0 + timedelta(seconds=6), tick=False):
        outcome = poll_stream(dims=PYTH, provider=PythProvider())
    assert outcome.written == 1
    assert "backfill_pages" not in outcome.counts
    assert [req.path for req, _ in httpserver.log] == ["/v2/updates/price/latest"]


def test_missing_pyth_key_is_recorded_and_backed_off_without_a_retry_storm(settings, httpserver):
    settings.PYTH_HERMES_URL, settings.PYTH_API_KEY, settings.PYTH_HISTORY_URL = httpserver.url_for("/"), "", ""
    settings.WORKER_ERROR_BACKOFF_MAX_SECONDS = 60
    provider = PythProvider()
    with time_machine.travel(T0, tick=False) as clock:
        outcome = poll_stream(dims=PYTH, provider=provider)
        assert "PYTH_API_KEY is not set" in outcome.error
        row = state(PYTH)
        assert "PYTH_API_KEY" in row.last_error
        assert row.consecutive_errors == 1
        assert row.next_poll_at == T0 + timedelta(seconds=60)
        clock.move_to(T0 + timedelta(seconds=30))
        assert poll_stream(dims=PYTH, provider=provider).skipped  # no second attempt inside the backoff
        clock.move_to(T0 + timedelta(seconds=61))
        poll_stream(dims=PYTH, provider=provider)
        assert state(PYTH).consecutive_errors == 2
    assert httpserver.log == []  # nothing was ever sent without a key


def test_429_waits_as_the_server_says_and_5xx_backs_off_doubling_up_to_the_cap(settings, httpserver):
    settings.PYTH_HERMES_URL, settings.PYTH_API_KEY = httpserver.url_for("/"), "k"
    settings.FEED_POLL_SECONDS, settings.WORKER_ERROR_BACKOFF_MAX_SECONDS = 5, 30
    FeedIngestionState.objects.create(**PYTH.as_filter(), last_event_ts=T0)
    provider = PythProvider()
    latest = httpserver.expect_request(
        "/v2/updates/price/latest", query_string={"ids[]": BTC_FEED_ID, "parsed": "true"}
    )
    latest.respond_with_data("slow down", status=429, headers={"Retry-After": "120"})
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False) as clock:
        poll_stream(dims=PYTH, provider=provider)
        assert state(PYTH).next_poll_at == T0 + timedelta(seconds=121)  # the server's wait beats the cap
        httpserver.clear()
        httpserver.expect_request("/v2/updates/price/latest").respond_with_data("oops", status=503)
        waits = []
        for _ in range(4):
            clock.move_to(state(PYTH).next_poll_at)
            before = state(PYTH).next_poll_at
            poll_stream(dims=PYTH, provider=provider)
            waits.append((state(PYTH).next_poll_at - before).total_seconds())
        # Failures 2..5 after the 429: 5 x 2^(n-1), capped at 30.
        assert waits == [10, 20, 30, 30]
        httpserver.clear()
        httpserver.expect_request("/v2/updates/price/latest").respond_with_data(
            body("hermes_latest_btc.json"), content_type="application/json"
        )
        clock.move_to(state(PYTH).next_poll_at)
        poll_stream(dims=PYTH, provider=provider)
    row = state(PYTH)
    assert row.consecutive_errors == 0
    # Polling works again, but the outage left a gap and no history endpoint is set: said, not hidden.
    assert row.last_error.startswith("gap since 2026-11-02T00:00:00")
    assert "PYTH_HISTORY_URL" in row.last_error


def test_run_feed_reports_a_missing_key_on_state_and_heartbeat(manage_py, worker_env):
    env = {**worker_env, "FEED_SOURCE": "pyth", "FEED_SUBJECTS": "BTC", "PYTH_API_KEY": "", "PYTH_HISTORY_URL": ""}
    result = subprocess.run([*manage_py, "run_feed", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "PYTH_API_KEY is not set" in result.stdout
    heartbeat = WorkerHeartbeat.objects.get(name="run_feed")
    assert "PYTH_API_KEY" in heartbeat.last_error
    assert heartbeat.counters["stream_errors"] == 1
    assert "PYTH_API_KEY" in FeedIngestionState.objects.get(source="pyth", subject="BTC").last_error


def test_run_feed_fills_the_tape_from_the_synthetic_source(manage_py, worker_env):
    env = {
        **worker_env,
        "FEED_SOURCE": "synthetic",
        "FEED_SUBJECTS": "BTC,ETH",
        "FEED_KIND": "candle",
        "FEED_GRANULARITY": "5m",
        "FEED_BACKFILL_MINUTES": "60",
    }
    result = subprocess.run([*manage_py, "run_feed", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    counts = dict(FeedIngestionState.objects.values_list("subject", "record_count"))
    assert set(counts) == {"BTC", "ETH"}
    assert all(11 <= n <= 12 for n in counts.values())
    assert FeedRecord.objects.filter(subject="ETH").count() == counts["ETH"]
