"""backfill_feed: a BackfillJob paged into the tape, resumable from a dead job's cursor."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command

from feeds.choices import BackfillStatus
from feeds.models import BackfillJob, FeedIngestionState, FeedRecord
from tests.factories import T0

pytestmark = pytest.mark.django_db

ARGS = ["--source", "synthetic", "--subject", "BTC", "--kind", "candle", "--granularity", "1m", "--no-progress"]
RANGE = ["--start", "2026-11-02T00:00:00Z", "--end", "2026-11-02T03:20:00Z"]  # 200 bars
NOW = T0 + timedelta(days=1)


def run(*extra):
    with time_machine.travel(NOW, tick=False):
        call_command("backfill_feed", *ARGS, *RANGE, *extra)


def test_backfill_writes_the_range_page_by_page(settings):
    settings.FEED_PAGE_SIZE = 64
    run()
    job = BackfillJob.objects.get()
    assert (job.status, job.records_written, job.pages_fetched) == (BackfillStatus.COMPLETED, 200, 4)
    assert job.cursor == T0 + timedelta(minutes=200)
    assert FeedRecord.objects.count() == 200


def test_a_dead_workers_job_is_resumed_from_its_cursor_after_the_lease_expires():
    job = BackfillJob.objects.create(
        source="synthetic",
        subject="BTC",
        kind="candle",
        granularity="1m",
        start=T0,
        end=T0 + timedelta(minutes=200),
        cursor=T0 + timedelta(minutes=150),
        status=BackfillStatus.RUNNING,
        claimed_by="deadhost:4242",
        lease_until=NOW - timedelta(seconds=1),
        records_written=150,
        pages_fetched=1,
    )
    run()
    job.refresh_from_db()
    assert job.status == BackfillStatus.COMPLETED
    assert job.records_written == 200
    assert job.claimed_by != "deadhost:4242"
    # Only the part after the cursor was fetched: nothing before it was (re)written.
    stamps = list(FeedRecord.objects.order_by("ts_event").values_list("ts_event", flat=True))
    assert stamps == [T0 + timedelta(minutes=m) for m in range(150, 200)]
    assert BackfillJob.objects.count() == 1


def test_a_job_held_by_a_live_worker_is_not_taken_over():
    BackfillJob.objects.create(
        source="synthetic",
        subject="BTC",
        kind="candle",
        granularity="1m",
        start=T0,
        end=T0 + timedelta(minutes=200),
        cursor=T0,
        status=BackfillStatus.RUNNING,
        claimed_by="otherhost:1",
        lease_until=NOW + timedelta(minutes=1),
    )
    with pytest.raises(CommandError, match="held by otherhost:1"):
        run()
    assert FeedRecord.objects.count() == 0


def test_a_stopped_run_continues_where_it_stopped(settings):
    settings.FEED_PAGE_SIZE = 50
    run("--max-pages", "1")
    job = BackfillJob.objects.get()
    assert (job.status, job.cursor, job.records_written) == (BackfillStatus.RUNNING, T0 + timedelta(minutes=50), 50)
    run()
    job.refresh_from_db()
    assert (job.status, job.records_written, job.pages_fetched) == (BackfillStatus.COMPLETED, 200, 4)


def test_backfill_never_moves_the_live_watermark_backwards():
    live = T0 + timedelta(hours=20)
    FeedIngestionState.objects.create(
        source="synthetic", subject="BTC", kind="candle", granularity="1m", last_event_ts=live
    )
    run()
    assert FeedIngestionState.objects.get().last_event_ts == live


def test_a_bad_range_is_a_clear_error():
    with pytest.raises(CommandError, match="must be before end"):
        call_command("backfill_feed", *ARGS, "--start", "2026-11-02T03:00:00Z", "--end", "2026-11-02T01:00:00Z")
    with pytest.raises(CommandError, match="unknown granularity"):
        call_command("backfill_feed", *ARGS[:-2], "7m", *RANGE)
    assert BackfillJob.objects.count() == 0
