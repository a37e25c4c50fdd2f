"""`manage.py run_feed`: keep the tape of every configured stream current (DESIGN.md §6)."""

import time

from django.conf import settings

from coordinator_site import metrics
from coordinator_site.worker import UnitResult, WorkerCommand
from feeds.providers import get_provider
from feeds.services import configured_dims, poll_stream, prune_records

RETENTION_EVERY_SECONDS = 600


class Command(WorkerCommand):
    help = "Back-fill from the watermark after a stall, then poll the provider every FEED_POLL_SECONDS."
    worker_name = "run_feed"
    default_sleep = 1.0  # each stream's own next_poll_at decides when it is asked again
    default_batch = 100  # history pages per stream per unit while catching up

    @property
    def unit_budget_seconds(self) -> float:
        # The loop beats between streams (below); one stream's poll is a couple of HTTP requests.
        return 2 * settings.FEED_HTTP_TIMEOUT_SECONDS + 2.0

    def setup(self, options: dict) -> None:
        self.streams = configured_dims()
        self.providers = {}
        self.last_pruned = 0.0
        self.log.info("feeding %s", ", ".join(str(d) for d in self.streams))

    def provider(self, source: str):
        if source not in self.providers:
            self.providers[source] = get_provider(source)
        return self.providers[source]

    def run_unit(self, *, batch: int) -> UnitResult:
        counts = {"records": 0, "stream_errors": 0, "rejected": 0}
        found = False
        for dims in self.streams:
            if self.stop:
                break
            outcome = poll_stream(dims=dims, provider=self.provider(dims.source), max_pages=batch)
            metrics.feed_polled(str(dims), written=outcome.written, error=bool(outcome.error))
            counts["records"] += outcome.written
            counts["rejected"] += outcome.rejected  # bad rows dropped (the stream's last_error says why)
            if outcome.error:
                counts["stream_errors"] += 1
                # The stream's backoff lives in its FeedIngestionState; the heartbeat shows the latest error.
                self.heartbeat.beat(error=f"{dims}: {outcome.error}")
            else:
                self._beat_safely()  # a unit over many streams still beats on time
            found = found or (not outcome.skipped and not outcome.caught_up and not outcome.error)
        if time.monotonic() - self.last_pruned >= RETENTION_EVERY_SECONDS or self.last_pruned == 0.0:
            counts["pruned"] = prune_records(batch_size=10_000, max_batches=10)
            self.last_pruned = time.monotonic()
            found = found or counts["pruned"] >= 100_000
        if not any(counts.values()):
            counts = {}
        return UnitResult(found=found, counts=counts)
