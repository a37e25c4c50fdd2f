"""Tape-first recovery: a price the tape lacks is asked from the provider (recorded real bodies on
a local server), stored through the ingest path and scored; a provider that is down costs at most
the time box, once per stream per batch, and the Input is retried, then expired as before."""

import json
import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
import time_machine

from feeds.dims import FeedDims
from feeds.models import FeedIngestionState, FeedRecord, TapeRecovery
from predictions.choices import FailureReason, InputStatus, PredictionStatus
from predictions.models import Input, Prediction
from scoring.ground_truth import gap_window, resolve_ground_truth
from scoring.services import score_batch
from tests.factories import T0, make_model
from tests.feeds.helpers import T0_S, body
from tests.scoring.helpers import BAR, make_round, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db

JSON = "application/json"
BINANCE = {"source": "binance", "subject": "BTC", "kind": "candle", "granularity": "1m"}
PYTH = {**BINANCE, "source": "pyth"}
NOW = T0 + timedelta(minutes=10)  # every gap below is older than a step plus a cadence


@pytest.fixture
def binance(settings, httpserver):
    settings.BINANCE_API_URL = httpserver.url_for("/api")
    settings.GROUND_TRUTH_FETCH_TIMEOUT_SECONDS = 5
    return httpserver


@pytest.fixture
def models():
    return [make_model(model_id=f"m{i}") for i in range(3)]


@pytest.fixture
def dead_port():
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hanging_url():
    """A server that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def gap_input(dims: dict, *, scheduled_for, horizon=timedelta(minutes=3), **overrides) -> Input:
    scope = {**dims, "scope_key": f"BTC-{dims['source']}", "horizon_seconds": int(horizon.total_seconds())}
    return make_scoring_input(scheduled_for=scheduled_for, horizon=horizon, scope=scope, **overrides)


def klines_query(start, end, limit=500):
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    return {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "startTime": str(ms(start)),
        "endTime": str(ms(end) - 1),
        "limit": str(limit),
    }


def recorded_klines(*pages: str) -> str:
    """Recorded Binance kline pages joined into one answer (the same rows, as Binance sends them)."""
    return json.dumps([row for page in pages for row in json.loads(body(page))])


def gap_fetch_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("gap fetch")]


def test_a_gap_at_the_horizon_is_filled_from_binance_stored_through_ingest_and_scored(binance, models, caplog):
    # Tape: bars opening T0-3m .. T0+3m; the bar opening T0+4m (it closes at resolvable_at) is missing.
    make_tape(T0 - 3 * BAR, [100.0, 100.0, 100.0, 68401.5, 68403.6, 68405.7, 68407.8], **BINANCE)
    input_ = gap_input(BINANCE, scheduled_for=T0 + 2 * BAR)  # entry: bar T0+1m (68403.6); exit at T0+5m
    make_round(input_, {models[0]: 0.9, models[1]: 0.2})
    start, end = gap_window(FeedDims(**BINANCE), T0 + 5 * BAR, T0 + 5 * BAR)
    assert (start, end) == (T0 + 3 * BAR, T0 + 5 * BAR + timedelta(microseconds=1))
    binance.expect_oneshot_request("/api/v3/klines", query_string=klines_query(start, end)).respond_with_data(
        body("binance_klines_1m_page2.json"),
        content_type=JSON,  # bars T0+3m (already stored) and T0+4m
    )

    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.INFO, logger="feeds"):
        result = score_batch(worker="w", batch=10, now=NOW)

    binance.check_assertions()
    assert (result.resolved, result.scored) == (1, 2)
    input_.refresh_from_db()
    assert input_.status == InputStatus.RESOLVED
    assert (input_.actuals["entry_price"], input_.actuals["resolved_price"]) == (68403.6, 68409.9)
    assert input_.actuals["direction_up"] is True
    fetched = FeedRecord.objects.get(**BINANCE, ts_event=T0 + 4 * BAR)
    assert input_.actuals["resolved_record_id"] == fetched.id
    assert fetched.values["close"] == 68409.9
    assert fetched.meta == {"trades": 1533}
    # Through the ingest path, filling only: the bar already on the tape keeps its values (it is not
    # rewritten nor duplicated); the watermark and the maintained count moved by the one new bar.
    kept = FeedRecord.objects.get(**BINANCE, ts_event=T0 + 3 * BAR)
    assert kept.values == {"open": 68407.8, "high": 68407.8, "low": 68407.8, "close": 68407.8, "volume": 1.0}
    assert FeedRecord.objects.filter(**BINANCE).count() == 8
    state = FeedIngestionState.objects.get(**BINANCE)
    assert (state.last_event_ts, state.record_count) == (T0 + 4 * BAR, 1)
    recovery = TapeRecovery.objects.get(**BINANCE)
    assert (recovery.fetches, recovery.records_written, recovery.last_error) == (1, 1, "")
    assert (recovery.window_start, recovery.window_end) == (start, end)
    assert recovery.next_fetch_at == NOW + timedelta(seconds=60)
    assert [p.status for p in Prediction.objects.filter(input=input_)] == [PredictionStatus.SCORED] * 2
    assert len(gap_fetch_lines(caplog)) == 1
    assert "stored 1 record(s)" in gap_fetch_lines(caplog)[0]


def test_a_missing_pyth_bar_is_fetched_from_the_udf_history(settings, httpserver, models):
    settings.PYTH_HISTORY_URL = httpserver.url_for("/udf")
    make_tape(T0 - 3 * BAR, [68490.0, 68495.0, 68500.0], **PYTH)  # bars T0-3m .. T0-1m
    input_ = gap_input(PYTH, scheduled_for=T0)  # entry: bar T0-1m closing at T0; exit: bar T0+2m
    make_round(input_, {models[0]: 0.7})
    # Bars opening in [T0+1m, T0+3m]: from = T0+1m, to = the window's end second - 1.
    query = {"symbol": "Crypto.BTC/USD", "resolution": "1", "from": str(T0_S + 60), "to": str(T0_S + 179)}
    httpserver.expect_oneshot_request("/udf/history", query_string=query).respond_with_data(
        body("udf_history_page1.json"),
        content_type=JSON,  # bars T0, T0+1m, T0+2m
    )

    with time_machine.travel(NOW, tick=False):
        result = score_batch(worker="w", batch=10, now=NOW)

    httpserver.check_assertions()
    assert result.resolved == 1
    input_.refresh_from_db()
    assert (input_.actuals["entry_price"], input_.actuals["resolved_price"]) == (68500.0, 68508.25)
    # Only the window asked for is stored (the answer's bar at T0 lies before it).
    assert sorted(FeedRecord.objects.filter(**PYTH, ts_event__gte=T0).values_list("ts_event", flat=True)) == [
        T0 + BAR,
        T0 + 2 * BAR,
    ]


def test_many_inputs_on_one_gap_cost_one_fetch(binance, models):
    make_tape(T0 - 3 * BAR, [100.0, 100.0, 100.0], **BINANCE)  # then nothing from the bar opening at T0
    inputs = [gap_input(BINANCE, scheduled_for=T0, horizon=h * BAR) for h in (3, 4, 5)]
    for input_ in inputs:
        make_round(input_, {models[0]: 0.6})
    binance.expect_oneshot_request("/api/v3/klines").respond_with_data(
        recorded_klines("binance_klines_1m_page1.json", "binance_klines_1m_page2.json"), content_type=JSON
    )

    with time_machine.travel(NOW, tick=False):
        result = score_batch(worker="w", batch=10, now=NOW)

    assert len(binance.log) == 1  # one request for the three gaps
    request = binance.log[0][0]
    start, end = gap_window(FeedDims(**BINANCE), T0 + 3 * BAR, T0 + 5 * BAR)
    assert request.args["startTime"] == str(int(start.timestamp() * 1000))  # the oldest gap's window ...
    assert request.args["endTime"] == str(int(end.timestamp() * 1000) - 1)  # ... to the newest one's
    assert result.resolved == 3
    closes = [Input.objects.get(pk=i.pk).actuals["resolved_price"] for i in inputs]
    assert closes == [68405.7, 68407.8, 68409.9]


def test_a_refused_connection_is_asked_once_per_stream_then_the_gap_expires_after_the_grace(
    settings, dead_port, models, caplog
):
    settings.BINANCE_API_URL = f"http://127.0.0.1:{dead_port}/api"
    settings.GROUND_TRUTH_GRACE_SECONDS = 600
    make_tape(T0 - 3 * BAR, [100.0, 100.0, 100.0, 101.0, 102.0, 103.0, 104.0], **BINANCE)  # up to T0+3m
    fine = gap_input(BINANCE, scheduled_for=T0)  # exit: the bar closing at T0+3m, on the tape
    gaps = [gap_input(BINANCE, scheduled_for=T0 + h * BAR) for h in (2, 3)]  # exits at T0+5m, T0+6m
    for input_ in (fine, *gaps):
        make_round(input_, {models[0]: 0.8, models[1]: 0.3})

    began = time.monotonic()
    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.INFO, logger="feeds"):
        first = score_batch(worker="w", batch=10, now=NOW)
    assert time.monotonic() - began < 10  # refused at once: no waiting out any timeout
    assert (first.resolved, first.deferred) == (1, 2)  # the rest of the batch is scored
    assert Input.objects.get(pk=fine.pk).status == InputStatus.RESOLVED
    recovery = TapeRecovery.objects.get(**BINANCE)
    assert recovery.fetches == 1  # two gaps, one ask
    assert "ProviderUnavailable" in recovery.last_error
    assert "Connection" in recovery.last_error
    assert len(gap_fetch_lines(caplog)) == 1

    # The gaps are retried (NOT_YET_RETRY_SECONDS later) without asking again within the interval.
    later = NOW + timedelta(seconds=11)
    with time_machine.travel(later, tick=False):
        again = score_batch(worker="w", batch=10, now=later)
    assert again.deferred == 2
    assert TapeRecovery.objects.get(**BINANCE).fetches == 1

    # After the grace: asked once more (the interval has passed), still down, so they expire as before.
    expiry = T0 + 6 * BAR + timedelta(seconds=600)
    with time_machine.travel(expiry, tick=False):
        last = score_batch(worker="w", batch=10, now=expiry)
    assert last.expired == 2
    assert TapeRecovery.objects.get(**BINANCE).fetches == 2
    for input_ in gaps:
        input_.refresh_from_db()
        assert input_.status == InputStatus.EXPIRED
    assert set(Prediction.objects.filter(input__in=gaps).values_list("status", "failure_reason").distinct()) == {
        (PredictionStatus.FAILED, FailureReason.NO_GROUND_TRUTH)
    }


def test_a_hanging_provider_costs_the_time_box_and_its_thread_ends(settings, hanging_url, models):
    settings.BINANCE_API_URL = f"{hanging_url}/api"
    settings.FEED_HTTP_TIMEOUT_SECONDS = 60  # without the time box the batch would wait this long
    settings.GROUND_TRUTH_FETCH_TIMEOUT_SECONDS = 1
    make_tape(T0 - 3 * BAR, [100.0, 100.0, 100.0, 101.0, 102.0, 103.0, 104.0], **BINANCE)
    fine = gap_input(BINANCE, scheduled_for=T0)
    gaps = [gap_input(BINANCE, scheduled_for=T0 + h * BAR) for h in (2, 3)]
    for input_ in (fine, *gaps):
        make_round(input_, {models[0]: 0.8})

    began = time.monotonic()
    with time_machine.travel(NOW, tick=False):
        result = score_batch(worker="w", batch=10, now=NOW)
    elapsed = time.monotonic() - began

    assert 0.9 <= elapsed < 10, elapsed  # the box (1 s) once, not 60 s, not once per gap
    assert (result.resolved, result.deferred) == (1, 2)
    recovery = TapeRecovery.objects.get(**BINANCE)
    assert recovery.fetches == 1
    # Whichever ends first, the wait (the box) or the request's own timeout (also the box): the same.
    assert "time box" in recovery.last_error or "(read timeout=1)" in recovery.last_error, recovery.last_error
    # The abandoned request was given the box as its own timeout: its thread ends soon after.
    deadline = time.monotonic() + 10
    while any(t.name.startswith("gap-fetch") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("gap-fetch") for t in threading.enumerate())


def test_a_batch_stops_asking_at_half_its_lease(settings, hanging_url):
    settings.BINANCE_API_URL = f"{hanging_url}/api"
    settings.FEED_HTTP_TIMEOUT_SECONDS = 60
    settings.SCORE_LEASE_SECONDS = 6  # fetches end by 3 s into the batch
    settings.GROUND_TRUTH_FETCH_TIMEOUT_SECONDS = 2.5
    streams = [{**BINANCE, "granularity": g} for g in ("1m", "5m", "15m")]
    for dims in streams:
        gap_input(dims, scheduled_for=T0 - timedelta(minutes=30))  # a tape with no record at all

    began = time.monotonic()
    with time_machine.travel(NOW, tick=False):
        result = score_batch(worker="w", batch=10, now=NOW)
    elapsed = time.monotonic() - began

    assert result.deferred == 3
    assert elapsed < 6, elapsed  # three boxes in a row would be 7.5 s; the lease's half is 3 s
    asked = TapeRecovery.objects.filter(fetches__gt=0)
    assert 1 <= asked.count() <= 2  # the first took 2.5 s of the 3; the next gets what is left (if any)
    assert sum(r.elapsed_ms for r in asked) <= 4000


def test_a_recent_gap_is_left_to_the_feed_and_synthetic_or_unconfigured_sources_are_never_asked(
    settings, binance, models
):
    settings.PYTH_HISTORY_URL = ""
    make_tape(T0 - 3 * BAR, [100.0] * 5, **BINANCE)
    recent = gap_input(BINANCE, scheduled_for=T0 + 2 * BAR)  # exit at T0+5m
    synthetic = gap_input({**BINANCE, "source": "synthetic"}, scheduled_for=T0)
    pyth = gap_input(PYTH, scheduled_for=T0)
    for input_ in (recent, synthetic, pyth):
        make_round(input_, {models[0]: 0.5})

    just_after = T0 + 5 * BAR + timedelta(seconds=30)  # within a step and a cadence of the exit
    with time_machine.travel(just_after, tick=False):
        result = score_batch(worker="w", batch=10, now=just_after)

    assert result.deferred == 3
    assert binance.log == []
    assert not TapeRecovery.objects.exists()


def test_a_429_pushes_the_streams_next_ask_to_the_retry_after(binance):
    make_tape(T0 - 3 * BAR, [100.0] * 3, **BINANCE)
    input_ = gap_input(BINANCE, scheduled_for=T0)
    binance.expect_request("/api/v3/klines").respond_with_data(
        body("binance_error_429.json"), status=429, headers={"Retry-After": "300"}, content_type=JSON
    )
    with time_machine.travel(NOW, tick=False):
        assert resolve_ground_truth(input_) is None
    recovery = TapeRecovery.objects.get(**BINANCE)
    assert "ProviderRateLimited" in recovery.last_error
    assert recovery.next_fetch_at == NOW + timedelta(seconds=300)
    with time_machine.travel(NOW + timedelta(seconds=120), tick=False):
        assert resolve_ground_truth(input_) is None  # past the interval, not past the Retry-After
    assert len(binance.log) == 1


def test_fetch_timeout_zero_turns_recovery_off(settings, binance):
    settings.GROUND_TRUTH_FETCH_TIMEOUT_SECONDS = 0
    make_tape(T0 - 3 * BAR, [100.0] * 3, **BINANCE)
    with time_machine.travel(NOW, tick=False):
        assert resolve_ground_truth(gap_input(BINANCE, scheduled_for=T0)) is None
    assert binance.log == []
