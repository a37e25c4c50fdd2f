"""Issue 20, feeds: one bad value never stops a stage. A bad row is rejected with its reason code,
the good rows of its page are stored, and the error is recorded where the operator looks."""

import logging
import math
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from coordinator_site.boundary import NON_FINITE_NUMBER, OUT_OF_RANGE, TOO_LARGE, UNSTORABLE_TEXT
from coordinator_site.models import WorkerHeartbeat
from feeds.choices import BackfillStatus
from feeds.dims import NormalizedRecord
from feeds.models import BackfillJob, FeedIngestionState, FeedRecord
from feeds.providers import ProviderConfigError
from feeds.providers.base import (
    BAD_TIMESTAMP,
    INCONSISTENT_CANDLE,
    MAX_PRICE,
    collect_rejections,
    parse_page,
)
from feeds.providers.csv_file import MAX_LINE_CHARS, CsvProvider
from feeds.providers.synthetic import SyntheticProvider
from feeds.services import ingest_records, poll_stream
from tests.factories import T0
from tests.feeds.helpers import candle, dims

pytestmark = pytest.mark.django_db

CSV_DIMS = dims("csv", "BTC", "candle", "1m")
HEADER = "ts_event,subject,open,high,low,close,volume\n"
TEN_MB = 10 * 1024 * 1024


def csv_row(t: datetime, close: float = 100.0, subject: str = "BTC") -> str:
    return f"{t.isoformat()},{subject},{close - 1},{close + 1},{close - 2},{close},1\n"


def write_csv_with_a_10_mb_line(path, first: datetime, rows: int = 6, bad_after: int = 2) -> list[datetime]:
    """`rows` good candle rows from `first` (one a minute) with a 10 MB line after the `bad_after`-th."""
    stamps = [first + timedelta(minutes=i) for i in range(rows)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for i, t in enumerate(stamps):
            if i == bad_after:
                handle.write(f"{t.isoformat()},BTC,1,2,0.5,{'9' * TEN_MB},1\n")
            handle.write(csv_row(t, 100.0 + i))
    return stamps


def stored_stamps(d=CSV_DIMS):
    return list(FeedRecord.objects.filter(**d.as_filter()).order_by("ts_event").values_list("ts_event", flat=True))


def stored(d=CSV_DIMS):
    return list(FeedRecord.objects.filter(**d.as_filter()).order_by("ts_event").values_list("ts_event", "values"))


# --- the 10 MB CSV line -------------------------------------------------------------------------


def test_a_10_mb_csv_line_is_rejected_and_a_run_feed_pass_stores_the_good_rows_and_records_why(tmp_path, settings):
    path = tmp_path / "feed.csv"
    stamps = write_csv_with_a_10_mb_line(path, T0 - timedelta(minutes=30))
    settings.FEED_CSV_PATH, settings.FEED_BACKFILL_MINUTES = str(path), 60
    with time_machine.travel(T0, tick=False):
        outcome = poll_stream(dims=CSV_DIMS, provider=CsvProvider())
    assert outcome.error == ""
    assert outcome.rejected == 1
    assert stored_stamps() == stamps
    state = FeedIngestionState.objects.get(**CSV_DIMS.as_filter())
    assert state.consecutive_errors == 0  # a rejected row is not a stream failure: no backoff
    assert state.last_error.startswith("rejected 1 record(s): TOO_LARGE x1 (line 4 is ")
    assert f"(at most {MAX_LINE_CHARS})" in state.last_error
    assert state.last_error_at == T0
    assert state.record_count == len(stamps)


def test_run_feed_over_a_csv_with_a_10_mb_line_stores_the_good_rows_and_records_the_error(
    tmp_path, manage_py, worker_env
):
    path = tmp_path / "feed.csv"
    now = timezone.now().replace(second=0, microsecond=0)
    stamps = write_csv_with_a_10_mb_line(path, now - timedelta(minutes=20))
    env = {
        **worker_env,
        "FEED_SOURCE": "csv",
        "FEED_CSV_PATH": str(path),
        "FEED_SUBJECTS": "BTC",
        "FEED_KIND": "candle",
        "FEED_GRANULARITY": "1m",
        "FEED_BACKFILL_MINUTES": "60",
    }
    result = subprocess.run([*manage_py, "run_feed", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert stored_stamps() == stamps
    state = FeedIngestionState.objects.get(**CSV_DIMS.as_filter())
    assert "TOO_LARGE" in state.last_error
    assert state.consecutive_errors == 0
    assert "rejected 1 of" in result.stdout + result.stderr  # one aggregated warning in the worker's log
    assert WorkerHeartbeat.objects.get(name="run_feed").counters["rejected"] == 1


def test_backfill_feed_over_a_csv_with_a_10_mb_line_fails_its_job_with_the_error_and_no_traceback(
    tmp_path, manage_py, worker_env
):
    path = tmp_path / "feed.csv"
    stamps = write_csv_with_a_10_mb_line(path, T0)
    env = {**worker_env, "FEED_CSV_PATH": str(path)}
    argv = ["--source", "csv", "--subject", "BTC", "--kind", "candle", "--granularity", "1m", "--no-progress"]
    window = ["--start", T0.isoformat(), "--end", (T0 + timedelta(hours=1)).isoformat()]
    result = subprocess.run(
        [*manage_py, "backfill_feed", *argv, *window], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "TOO_LARGE" in result.stderr
    job = BackfillJob.objects.get()
    assert job.status == BackfillStatus.FAILED
    assert job.lease_until is None
    assert "TOO_LARGE x1 (line 4 is " in job.error
    assert job.cursor == T0  # a re-run re-fetches from the first page that had a rejection
    assert stored_stamps() == stamps  # the good rows are stored all the same


def test_a_backfill_stopped_by_an_unexpected_error_fails_its_job_and_releases_the_lease(monkeypatch):
    def explode(self, dims, start, end, limit):
        raise RuntimeError("parser bug \x00 on \ud800 a bad body")

    monkeypatch.setattr(SyntheticProvider, "fetch", explode)
    args = ["--source", "synthetic", "--subject", "BTC", "--kind", "candle", "--granularity", "1m", "--no-progress"]
    with pytest.raises(CommandError, match="stopped at 2026-11-02T00:00:00"):
        call_command("backfill_feed", *args, "--start", "2026-11-02T00:00:00Z", "--end", "2026-11-02T01:00:00Z")
    job = BackfillJob.objects.get()
    assert (job.status, job.lease_until) == (BackfillStatus.FAILED, None)
    assert job.error == "RuntimeError: parser bug \\0 on \\ud800 a bad body"  # escaped: storable


def test_a_backfill_whose_pages_had_no_rejection_still_completes(tmp_path, settings):
    path = tmp_path / "feed.csv"
    path.write_text(HEADER + "".join(csv_row(T0 + timedelta(minutes=i)) for i in range(5)))
    settings.FEED_CSV_PATH, settings.FEED_PAGE_SIZE = str(path), 2
    call_command(
        "backfill_feed",
        *["--source", "csv", "--subject", "BTC", "--kind", "candle", "--granularity", "1m", "--no-progress"],
        *["--start", T0.isoformat(), "--end", (T0 + timedelta(minutes=10)).isoformat()],
    )
    job = BackfillJob.objects.get()
    assert (job.status, job.error, job.records_written) == (BackfillStatus.COMPLETED, "", 5)


def test_a_rejection_on_a_later_page_fails_the_job_at_that_page(tmp_path, settings):
    path = tmp_path / "feed.csv"
    rows = [csv_row(T0 + timedelta(minutes=i)) for i in range(6)]
    rows.insert(4, f"{(T0 + timedelta(minutes=3, seconds=30)).isoformat()},BTC,1,2,0.5,0,1\n")  # close 0
    path.write_text(HEADER + "".join(rows))
    settings.FEED_CSV_PATH, settings.FEED_PAGE_SIZE = str(path), 2
    with pytest.raises(CommandError, match="OUT_OF_RANGE"):
        call_command(
            "backfill_feed",
            *["--source", "csv", "--subject", "BTC", "--kind", "candle", "--granularity", "1m", "--no-progress"],
            *["--start", T0.isoformat(), "--end", (T0 + timedelta(minutes=10)).isoformat()],
        )
    job = BackfillJob.objects.get()
    # The CSV provider reads (and so rejects from) the whole file on its first page.
    assert (job.status, job.cursor, job.lease_until) == (BackfillStatus.FAILED, T0, None)
    assert "values.close is 0.0, not > 0" in job.error
    assert len(stored_stamps()) == 6


def test_a_csv_line_too_long_costs_no_memory_and_bytes_that_are_not_utf8_reject_their_row(tmp_path):
    path = tmp_path / "feed.csv"
    with open(path, "wb") as handle:
        handle.write(HEADER.encode())
        handle.write(csv_row(T0).encode())
        handle.write(b"2026-11-02T00:01:00Z,BTC,1,2,0.5,1.5\xff\xfe,1\n")  # not UTF-8
        handle.write(b"2026-11-02T00:02:00Z,BTC,1,2,0.5,1\x00,1\n")  # a NUL
        handle.write(b"2026-11-02T00:03:00Z,BTC,1,2,0.5," + b"1" * 100 + b",1\n")  # a field too long
        handle.write(b"x" * (3 * MAX_LINE_CHARS))  # the last line, over-long, without a newline
    with collect_rejections() as rejected:
        records = CsvProvider(str(path)).fetch(CSV_DIMS, T0, T0 + timedelta(hours=1), 10)
    assert [r.ts_event for r in records] == [T0]
    assert dict(rejected.counts) == {UNSTORABLE_TEXT: 2, TOO_LARGE: 2}
    assert "line 3: close contains a lone surrogate" in rejected.reasons()
    assert "line 4: close contains a NUL character" in rejected.reasons()


def test_a_csv_whose_header_cannot_be_read_is_a_config_error(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text("x" * (MAX_LINE_CHARS + 10) + "\n" + csv_row(T0))
    with pytest.raises(ProviderConfigError, match="unreadable header row"):
        CsvProvider(str(path)).fetch(CSV_DIMS, T0, T0 + timedelta(hours=1), 10)


# --- value ranges -------------------------------------------------------------------------------


def tick(second: int, price, **extra) -> NormalizedRecord:
    return NormalizedRecord(
        "binance", "BTC", "tick", "1s", T0 + timedelta(seconds=second), {"price": price, **extra}, {}
    )


@pytest.mark.parametrize(
    ("price", "code"),
    [
        (0, OUT_OF_RANGE),
        (0.0, OUT_OF_RANGE),
        (-1.5, OUT_OF_RANGE),
        ("-68000", OUT_OF_RANGE),
        (1e308, OUT_OF_RANGE),
        (MAX_PRICE * 1.000001, OUT_OF_RANGE),
        (10**400, OUT_OF_RANGE),
        ("1e308", OUT_OF_RANGE),
        (math.nan, NON_FINITE_NUMBER),
        ("inf", NON_FINITE_NUMBER),
    ],
)
def test_a_price_that_is_a_number_but_no_price_is_rejected_and_the_page_goes_on(price, code):
    with collect_rejections() as rejected:
        assert ingest_records([tick(0, 68000.0), tick(1, price), tick(2, 68001.0)]) == 2
    assert dict(rejected.counts) == {code: 1}
    assert list(FeedRecord.objects.order_by("ts_event").values_list("values", flat=True)) == [
        {"price": 68000.0},
        {"price": 68001.0},
    ]


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"open": 1.0, "high": 2.0, "low": 0.0, "close": 1.0}, OUT_OF_RANGE),  # a zero low
        ({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.0, "volume": -1.0}, OUT_OF_RANGE),
        ({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.0, "volume": math.inf}, NON_FINITE_NUMBER),
        ({"open": 1.0, "high": 1e308, "low": 0.5, "close": 1.0}, OUT_OF_RANGE),
        ({"open": 3.0, "high": 2.0, "low": 0.5, "close": 1.0}, INCONSISTENT_CANDLE),
    ],
)
def test_candle_values_out_of_their_ranges_are_rejected(values, code):
    bad = NormalizedRecord("synthetic", "BTC", "candle", "1m", T0 + timedelta(minutes=1), values, {})
    with collect_rejections() as rejected:
        assert ingest_records([candle(0), bad, candle(2)]) == 2
    assert dict(rejected.counts) == {code: 1}
    assert stored(dims()) == [(T0, candle(0).values), (T0 + timedelta(minutes=2), candle(2).values)]


def test_a_zero_volume_is_a_valid_candle():
    values = {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.0, "volume": 0.0}
    assert ingest_records([NormalizedRecord("synthetic", "BTC", "candle", "1m", T0, values, {})]) == 1


def test_timestamps_outside_the_bounds_are_rejected():
    far = NormalizedRecord("binance", "BTC", "tick", "1s", datetime(9999, 12, 31, tzinfo=UTC), {"price": 1.0})
    early = NormalizedRecord("binance", "BTC", "tick", "1s", datetime(1969, 12, 31, tzinfo=UTC), {"price": 1.0})
    with collect_rejections() as rejected:
        assert ingest_records([far, tick(0, 5.0), early]) == 1
    assert dict(rejected.counts) == {BAD_TIMESTAMP: 2}


def test_a_zero_start_price_for_the_synthetic_walk_is_a_config_error_not_a_flood_of_rows():
    with pytest.raises(ProviderConfigError, match="SYNTHETIC_START_PRICE"):
        SyntheticProvider(start_price=0)


# --- text that cannot be stored -----------------------------------------------------------------


@pytest.mark.parametrize("subject", ["BT\x00C", "BTC\ud800", "B" * 65])
def test_a_subject_that_cannot_be_stored_is_rejected_and_the_other_streams_are_stored(subject):
    bad = NormalizedRecord("binance", subject, "tick", "1s", T0, {"price": 1.0})
    with collect_rejections() as rejected:
        assert ingest_records([tick(0, 5.0), bad, tick(1, 6.0)]) == 2
    assert set(rejected.counts) <= {UNSTORABLE_TEXT, TOO_LARGE}
    assert rejected.total == 1
    assert list(FeedRecord.objects.values_list("subject", flat=True).distinct()) == ["BTC"]


@pytest.mark.parametrize(
    "meta",
    [{"symbol": "BTC\x00USDT"}, {"symbol": "\udcff"}, {"slot": math.nan}, {"k": "x" * 5000}, {1: "a"}],
)
def test_a_meta_that_cannot_be_stored_is_rejected(meta):
    bad = NormalizedRecord("binance", "BTC", "tick", "1s", T0 + timedelta(seconds=1), {"price": 1.0}, meta)
    with collect_rejections() as rejected:
        assert ingest_records([tick(0, 5.0), bad]) == 1
    assert rejected.total == 1
    assert FeedRecord.objects.count() == 1


def test_a_value_named_with_a_nul_is_rejected():
    with collect_rejections() as rejected:
        assert ingest_records([tick(0, 5.0, **{"co\x00nf": 1.0}), tick(1, 5.0, conf=0.5)]) == 1
    assert dict(rejected.counts) == {UNSTORABLE_TEXT: 1}


def test_control_characters_are_storable_and_kept():
    meta = {"note": "tab\there\x01\x1f\x7f"}
    ingest_records([NormalizedRecord("binance", "BTC", "tick", "1s", T0, {"price": 1.0}, meta)])
    assert FeedRecord.objects.get().meta == meta


# --- duplicates within one page ---------------------------------------------------------------


def test_a_later_bad_duplicate_never_replaces_a_good_row():
    with collect_rejections() as rejected:
        assert ingest_records([tick(0, 5.0), tick(0, 0.0), tick(0, "\x00")]) == 1
    assert rejected.total == 2
    assert FeedRecord.objects.get().values == {"price": 5.0}


def test_the_last_valid_duplicate_wins():
    assert ingest_records([tick(0, math.nan), tick(0, 5.0), tick(0, 6.0), tick(0, -1)]) == 1
    assert FeedRecord.objects.get().values == {"price": 6.0}


def test_csv_duplicates_keep_the_last_valid_row_across_pages(tmp_path):
    path = tmp_path / "feed.csv"
    rows = [csv_row(T0, 100.0), csv_row(T0, 200.0), f"{T0.isoformat()},BTC,1,2,0.5,-5,1\n", csv_row(T0, 300.0)]
    rows.append(f"{T0.isoformat()},BTC,1,2,0.5,nan,1\n")
    rows.append(csv_row(T0 + timedelta(minutes=1), 400.0))
    path.write_text(HEADER + "".join(rows))
    provider = CsvProvider(str(path))
    first = provider.fetch(CSV_DIMS, T0, T0 + timedelta(hours=1), 1)
    second = provider.fetch(CSV_DIMS, T0 + timedelta(minutes=1), T0 + timedelta(hours=1), 1)
    assert [(r.ts_event, r.values["close"]) for r in first + second] == [
        (T0, 300.0),
        (T0 + timedelta(minutes=1), 400.0),
    ]


# --- where the operator sees it -----------------------------------------------------------------


class FlakyProvider:
    """Answers `latest` with what the test says, or raises it."""

    source = "binance"

    def __init__(self, answer):
        self.answer = answer

    def fetch(self, dims, start, end, limit):
        return []

    def latest(self, dims):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


TICKS = dims("binance", "BTC", "tick", "1s")


def test_a_pass_records_its_rejections_escaped_and_the_next_clean_pass_clears_them(settings):
    FeedIngestionState.objects.create(**TICKS.as_filter(), last_event_ts=T0)
    page = [tick(1, 5.0), tick(2, "6\x00"), tick(3, 1e308)]
    with time_machine.travel(T0 + timedelta(seconds=4), tick=False) as clock:
        outcome = poll_stream(dims=TICKS, provider=FlakyProvider(page))
        state = FeedIngestionState.objects.get(**TICKS.as_filter())
        assert (outcome.written, outcome.rejected, outcome.error) == (1, 2, "")
        assert "OUT_OF_RANGE x1" in state.last_error
        assert "UNSTORABLE_TEXT x1" in state.last_error
        assert "\x00" not in state.last_error
        clock.move_to(state.next_poll_at)
        outcome = poll_stream(dims=TICKS, provider=FlakyProvider([tick(10, 7.0)]))
    state = FeedIngestionState.objects.get(**TICKS.as_filter())
    assert (outcome.written, state.last_error, state.consecutive_errors) == (1, "", 0)
    assert FeedRecord.objects.count() == 2


def test_an_unexpected_error_from_a_provider_is_recorded_on_the_stream_not_raised(settings, caplog):
    settings.FEED_POLL_SECONDS, settings.WORKER_ERROR_BACKOFF_MAX_SECONDS = 5, 60
    FeedIngestionState.objects.create(**TICKS.as_filter(), last_event_ts=T0)
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False), caplog.at_level(logging.ERROR, "feeds"):
        outcome = poll_stream(dims=TICKS, provider=FlakyProvider(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "x\x00")))
    state = FeedIngestionState.objects.get(**TICKS.as_filter())
    assert outcome.error.startswith("UnicodeDecodeError")
    assert state.last_error.startswith("UnicodeDecodeError")
    assert "\x00" not in state.last_error
    assert state.consecutive_errors == 1
    assert state.next_poll_at == T0 + timedelta(seconds=6)


def test_a_page_of_rejections_is_one_warning_not_one_per_row(caplog):
    items = [{"price": "x"}] * 500 + [{"price": 1.0}]

    def parse(item):
        return NormalizedRecord("binance", "BTC", "tick", "1s", T0, item, {})

    with caplog.at_level(logging.WARNING, "feeds"):
        assert len(parse_page(items, parse, source="binance")) == 1
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("rejected 500 of 501 record(s) from binance: NOT_A_NUMBER x500 (")


SYNTHETIC_ARGS = ["--source", "synthetic", "--subject", "BTC", "--kind", "candle", "--granularity", "1m"]
ONE_HOUR = ["--start", "2026-11-02T00:00:00Z", "--end", "2026-11-02T01:00:00Z", "--no-progress"]


def a_bad_page_then(monkeypatch, then):
    """SyntheticProvider.fetch answering a page with one bad candle first, then `then(start)`."""
    calls = []

    def fetch(self, dims, start, end, limit):
        calls.append(start)
        if len(calls) == 1:
            bad = NormalizedRecord("synthetic", "BTC", "candle", "1m", start + timedelta(minutes=1), {"close": 1.0})
            return [candle(0), bad, candle(2)]
        return then(start)

    monkeypatch.setattr(SyntheticProvider, "fetch", fetch)


def test_an_error_after_a_page_with_rejections_keeps_both_reasons_and_the_first_bad_page(monkeypatch):
    def explode(start):
        raise RuntimeError(f"boom at {start.isoformat()}")

    a_bad_page_then(monkeypatch, explode)
    with pytest.raises(CommandError, match="boom"):
        call_command("backfill_feed", *SYNTHETIC_ARGS, *ONE_HOUR)
    job = BackfillJob.objects.get()
    assert (job.status, job.cursor, job.lease_until) == (BackfillStatus.FAILED, T0, None)
    assert job.error.startswith("RuntimeError: boom at 2026-11-02T00:03:00+00:00; rejected 1 record(s): MISSING_FIELD")
    assert len(stored_stamps(dims())) == 2


def test_a_page_budget_spent_after_rejections_fails_the_job_instead_of_releasing_it(monkeypatch):
    a_bad_page_then(monkeypatch, lambda start: [candle(5)])
    with pytest.raises(CommandError, match="MISSING_FIELD"):
        call_command("backfill_feed", *SYNTHETIC_ARGS, *ONE_HOUR, "--max-pages", "1")
    job = BackfillJob.objects.get()
    assert (job.status, job.cursor, job.lease_until) == (BackfillStatus.FAILED, T0, None)
