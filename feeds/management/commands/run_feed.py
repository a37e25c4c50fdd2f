"""`manage.py run_feed`: keep the tape of every configured stream current (DESIGN.md §6)."""

import time

from django.conf import settings

from coordinator_site import metrics
from coordinator_site.worker import UnitResult, WorkerCommand
from feeds.providers import get_provider
from feeds.services import configured_dims, poll_stream, prune_records
from feeds.streaming import StreamIngestor, split_streams

RETENTION_EVERY_SECONDS = 600
# Stream mode (docs/feeds.md): a unit stores streamed batches for up to STREAM_UNIT_SECONDS, each batch
# in its own transaction; an idle unit has waited up to STREAM_WAIT_SECONDS for the next event, so the
# loop's own idle sleep stays short.
STREAM_UNIT_SECONDS = 1.0
STREAM_WAIT_SECONDS = 0.5
STREAM_IDLE_SLEEP = 0.05


class Command(WorkerCommand):
    help = (
        "Keep the tape current: push connections where the provider has one (FEED_MODE=stream), else "
        "back-fill from the watermark after a stall and poll every FEED_POLL_SECONDS."
    )
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
        # --once is one pass (tests, cron): a push connection needs a long-running worker, so it polls.
        streamed, self.polled = split_streams(self.streams, once=options["once"])
        self.ingestor = StreamIngestor(streams=streamed, provider_for=self.provider) if streamed else None
        if self.ingestor is not None:
            self.ingestor.start()
        modes = ", ".join(f"{d} ({'stream' if d in streamed else 'poll'})" for d in self.streams)
        self.log.info("feeding %s", modes)

    def provider(self, source: str):
        if source not in self.providers:
            self.providers[source] = get_provider(source)
        return self.providers[source]

    def run_unit(self, *, batch: int) -> UnitResult:
        counts = {"records": 0, "stream_errors": 0, "rejected": 0}
        found = False
        for dims in self.polled:
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
        if self.ingestor is not None and not self.stop:
            found = self.run_stream_steps(counts, batch=batch, wait=0.0 if found else STREAM_WAIT_SECONDS) or found
        if time.monotonic() - self.last_pruned >= RETENTION_EVERY_SECONDS or self.last_pruned == 0.0:
            counts["pruned"] = prune_records(batch_size=10_000, max_batches=10)
            self.last_pruned = time.monotonic()
            found = found or counts["pruned"] >= 100_000
        if not any(counts.values()):
            counts = {}
        return UnitResult(found=found, counts=counts)

    def run_stream_steps(self, counts: dict[str, int], *, batch: int, wait: float) -> bool:
        """Streamed batches for up to STREAM_UNIT_SECONDS (each `step` stores one batch in one transaction)."""
        found = False
        deadline = time.monotonic() + STREAM_UNIT_SECONDS
        while not self.stop:
            step = self.ingestor.step(max_pages=batch, wait=wait)
            for key, value in step.counts.items():
                counts[key] = counts.get(key, 0) + value
            for error in step.errors:
                self.heartbeat.beat(error=error)
            found = found or step.found
            remaining = deadline - time.monotonic()
            if not step.found or remaining <= 0:
                break
            wait = min(STREAM_WAIT_SECONDS, remaining)
        return found

    def loop(self, *, once: bool, sleep: float, batch: int) -> None:
        # In stream mode the unit itself waits for the next event: keep the loop's idle sleep short.
        super().loop(once=once, sleep=min(sleep, STREAM_IDLE_SLEEP) if self.ingestor else sleep, batch=batch)

    def teardown(self) -> None:
        if getattr(self, "ingestor", None) is not None:
            self.ingestor.stop()
