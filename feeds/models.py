from django.db import models
from django.db.models import Q
from django.utils import timezone

from feeds.choices import BACKFILL_OPEN, BACKFILL_TRANSITIONS, BackfillStatus


class FeedDimensions(models.Model):
    """The four dimensions that name one stream of the tape."""

    source = models.CharField(max_length=32)
    subject = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)
    granularity = models.CharField(max_length=8)

    class Meta:
        abstract = True

    @property
    def dims_label(self) -> str:
        return f"{self.source}/{self.subject}/{self.kind}/{self.granularity}"


class FeedRecord(FeedDimensions):
    """One tick or bar of the tape. Candles are stamped with their open time (ts_event)."""

    id = models.BigAutoField(primary_key=True)
    ts_event = models.DateTimeField()
    ts_ingested = models.DateTimeField(default=timezone.now)
    values = models.JSONField(default=dict)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "subject", "kind", "granularity", "ts_event"], name="feedrecord_natural_key"
            ),
        ]
        indexes = [models.Index(fields=["ts_event"], name="feedrecord_ts_event")]  # retention

    def __str__(self) -> str:
        return f"{self.dims_label} @ {self.ts_event.isoformat()}"


class FeedIngestionState(FeedDimensions):
    """Watermark and health of one stream: what has been stored, when it was last polled."""

    last_event_ts = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_errors = models.PositiveIntegerField(default=0)
    # Not polled again before this time: the poll interval after a success, capped backoff (or the
    # server's Retry-After) after a failure. Kept in the row so a restarted worker does not storm.
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # Maintained by ingest (inserted rows) and retention (deleted rows) in the same transaction, so
    # summaries need no COUNT(*) over the tape.
    record_count = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "subject", "kind", "granularity"], name="feedingestionstate_dims"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dims_label} watermark {self.last_event_ts}"


class TapeRecovery(FeedDimensions):
    """The resolver's asks for a price missing from one stream's tape (docs/feeds.md "Gap fetch").

    One row per stream, claimed with a conditional UPDATE on `next_fetch_at`, so however many score
    workers run, a stream's provider is asked at most once per GROUND_TRUTH_FETCH_INTERVAL_SECONDS.
    Kept apart from FeedIngestionState: that row is the feed worker's (schedule, health), this one
    the score worker's."""

    # Not asked again before this time: the interval after an ask, or the server's Retry-After.
    next_fetch_at = models.DateTimeField(null=True, blank=True)
    last_fetch_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)  # the last window asked for, [start, end)
    window_end = models.DateTimeField(null=True, blank=True)
    records_written = models.PositiveIntegerField(default=0)  # by the last ask
    fetches = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")  # of the last ask ("" when it answered)
    elapsed_ms = models.PositiveIntegerField(default=0)  # of the last ask

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "subject", "kind", "granularity"], name="taperecovery_dims"),
        ]

    def __str__(self) -> str:
        return f"{self.dims_label} gap fetches {self.fetches}"


class BackfillJob(FeedDimensions):
    """A resumable history download over [start, end); `cursor` is the next ts_event to fetch."""

    STATUS_TRANSITIONS = BACKFILL_TRANSITIONS

    start = models.DateTimeField()
    end = models.DateTimeField()
    cursor = models.DateTimeField(null=True, blank=True)
    records_written = models.BigIntegerField(default=0)
    pages_fetched = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=BackfillStatus.choices, default=BackfillStatus.PENDING)
    error = models.TextField(blank=True, default="")
    claimed_by = models.CharField(max_length=128, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=BackfillStatus.values), name="backfilljob_status_valid"),
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="backfilljob_start_before_end"),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="backfilljob_open", condition=Q(status__in=sorted(BACKFILL_OPEN))),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backfill {self.dims_label} [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) {self.status}"
