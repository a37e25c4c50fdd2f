"""Stream mode (FEED_MODE=stream, docs/feeds.md "Stream mode"): push connections feed the tape.

One `StreamConnection` thread per source holds the provider's push connection (Hermes server-sent
events, Binance WebSocket streams) for all of that source's streamed dims: it connects, reads with
an idle timeout, and reconnects with capped, jittered backoff, forever. It never touches the
database: it puts `StreamEvent`s on a queue.

`StreamIngestor` runs in the worker's thread and owns every database write:

- records are stored in small batches (at most FEED_STREAM_BATCH_MS of delay or
  FEED_STREAM_BATCH_RECORDS records, and as soon as no record has come for FEED_STREAM_LINGER_MS)
  through `ingest_records` -- the same boundary check and
  idempotent upsert as polling -- never one transaction per message;
- after every (re)connect the stream is back-filled from its watermark as it stood when the
  connection opened (`poll_stream(gap_from=...)`, the existing history path), so a disconnect
  leaves no gap; records that arrive meanwhile wait in the queue;
- while a stream's connection is down, the stream is polled as in FEED_MODE=poll (the fallback).
"""

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from coordinator_site.boundary import escape_text
from feeds.dims import FeedDims, NormalizedRecord
from feeds.models import FeedIngestionState
from feeds.providers import FeedProvider, ProviderRateLimited
from feeds.providers.base import CONNECTED, Rejections, collect_rejections
from feeds.selectors import is_streamed
from feeds.services import (
    ingest_records,
    next_cursor,
    poll_stream,
    record_stream_disconnect,
    record_stream_rejections,
)

log = logging.getLogger("feeds.stream")

RECONNECT_BASE_SECONDS = 0.5
EVENT_QUEUE_SIZE = 10_000  # batches waiting for the database; when full the reader waits (then the server drops it)


FEED_MODES = ("stream", "poll")


def split_streams(streams: list[FeedDims], *, once: bool = False) -> tuple[list[FeedDims], list[FeedDims]]:
    """(streamed, polled): which streams a worker feeds through push connections and which it polls.

    A one-shot pass (`once`) polls everything. Raises ValueError naming FEED_MODE for an unknown mode."""
    if settings.FEED_MODE not in FEED_MODES:
        raise ValueError(f"FEED_MODE={settings.FEED_MODE!r} is not one of: {', '.join(FEED_MODES)}")
    streamed = [] if once else [dims for dims in streams if is_streamed(dims)]
    return streamed, [dims for dims in streams if dims not in streamed]


@dataclass
class StreamEvent:
    """What a connection thread tells the worker: `connected`, `records` or `disconnected`."""

    kind: str
    streams: tuple[FeedDims, ...]
    records: list[NormalizedRecord] = field(default_factory=list)
    rejected: Rejections | None = None  # what the provider's boundary check dropped from this event
    detail: str = ""


def reconnect_delay(failures: int) -> float:
    """Seconds before reconnect attempt `failures` (1, 2, ...): doubling from 0.5 s up to the cap, with
    jitter (a random 50-100 %) so that many nodes dropped at once do not come back at once."""
    cap = settings.FEED_STREAM_RECONNECT_MAX_SECONDS
    return min(cap, RECONNECT_BASE_SECONDS * 2 ** min(max(failures - 1, 0), 16)) * random.uniform(0.5, 1.0)


class StreamConnection(threading.Thread):
    """Holds one provider push connection for `streams`, reconnecting forever until `stop()`."""

    def __init__(self, *, provider, streams: list[FeedDims], events: queue.Queue) -> None:
        super().__init__(name=f"stream-{provider.source}", daemon=True)
        self.provider = provider
        self.streams = tuple(streams)
        self.events = events
        self.stopping = threading.Event()
        self.connects = 0  # connections opened so far (for tests and the log)

    def stop(self) -> None:
        self.stopping.set()

    def _put(self, event: StreamEvent) -> bool:
        while not self.stopping.is_set():
            try:
                self.events.put(event, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            received = False
            retry_after = 0.0
            detail = "closed by the server"
            try:
                items = self.provider.stream(
                    list(self.streams), idle_seconds=settings.FEED_STREAM_IDLE_SECONDS, stop=self.stopping
                )
                while True:
                    with collect_rejections() as rejected:  # what the provider rejected while producing this item
                        item = next(items, None)
                    if item is None:
                        break
                    if item == CONNECTED:
                        self.connects += 1
                        log.info("stream %s connected (%s)", self.provider.source, self._label())
                        self._put(StreamEvent("connected", self.streams))
                        continue
                    received = True
                    if item or rejected.total:
                        self._put(StreamEvent("records", self.streams, records=item, rejected=rejected))
                    if self.stopping.is_set():
                        items.close()
                        break
            except ProviderRateLimited as exc:
                retry_after, detail = exc.retry_after, str(exc)
            except Exception as exc:  # whatever ends a connection, the thread reconnects
                detail = f"{type(exc).__name__}: {exc}"
            if self.stopping.is_set():
                break
            failures = 1 if received else failures + 1
            delay = max(retry_after, reconnect_delay(failures))
            log.warning("stream %s disconnected (%s); reconnecting in %.1fs", self.provider.source, detail, delay)
            self._put(StreamEvent("disconnected", self.streams, detail=escape_text(detail, max_chars=500)))
            self.stopping.wait(delay)

    def _label(self) -> str:
        return ", ".join(str(d) for d in self.streams)


@dataclass
class StreamStep:
    """What one `StreamIngestor.step` did."""

    found: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, n: int) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n


class StreamIngestor:
    """Stores what the push connections deliver, back-fills after each (re)connect, polls while one is down.

    `step()` is the worker's unit of work; every database write happens in the calling thread.
    """

    def __init__(self, *, streams: list[FeedDims], provider_for: Callable[[str], FeedProvider]) -> None:
        self.streams = list(streams)
        self.provider_for = provider_for
        self.events: queue.Queue = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self.live: set[FeedDims] = set()  # connection open: records come from it
        self.gaps: dict[FeedDims, tuple[datetime, datetime]] = {}  # back-fill pending: (from, not before)
        # The watermark when each stream's connection was last down (at start: when the worker started).
        # A reconnect back-fills from here even if a fallback poll stored a newer record meanwhile.
        self.down_since: dict[FeedDims, datetime | None] = {}
        self.connections: list[StreamConnection] = []
        by_source: dict[str, list[FeedDims]] = {}
        for dims in self.streams:
            by_source.setdefault(dims.source, []).append(dims)
        for source, dims_list in by_source.items():
            self.connections.append(
                StreamConnection(provider=provider_for(source), streams=dims_list, events=self.events)
            )

    def start(self) -> None:
        self.down_since = self._watermarks(self.streams)
        for connection in self.connections:
            connection.start()

    def stop(self, *, timeout: float = 2.0) -> None:
        for connection in self.connections:
            connection.stop()
        deadline = time.monotonic() + timeout
        for connection in self.connections:
            connection.join(max(0.0, deadline - time.monotonic()))

    # --- the unit of work -------------------------------------------------------------------
    def step(self, *, max_pages: int = 100, wait: float = 0.5) -> StreamStep:
        """Back-fill or poll what needs it, then store the next batch of streamed records.

        Waits up to `wait` seconds for the first event when there is nothing else to do."""
        result = StreamStep()
        self._fill_and_poll(result, max_pages=max_pages)
        self._drain(result, wait=0.0 if result.found else wait)
        return result

    def _fill_and_poll(self, result: StreamStep, *, max_pages: int) -> None:
        now = timezone.now()
        for dims in self.streams:
            provider = self.provider_for(dims.source)
            gap = self.gaps.get(dims)
            if gap is not None:
                start, not_before = gap
                if now < not_before:
                    continue
                outcome = poll_stream(dims=dims, provider=provider, max_pages=max_pages, gap_from=start)
                if outcome.error:
                    self.gaps[dims] = (start, outcome.retry_at or now)
                elif not outcome.caught_up and outcome.cursor is not None:
                    self.gaps[dims] = (outcome.cursor, now)  # page budget spent: go on next step
                else:
                    del self.gaps[dims]
                    log.info("stream %s: back-filled from %s (%d record(s))", dims, start.isoformat(), outcome.written)
            elif dims not in self.live:
                outcome = poll_stream(dims=dims, provider=provider, max_pages=max_pages)  # the fallback
            else:
                continue
            result.add("records", outcome.written)
            result.add("rejected", outcome.rejected)
            if outcome.error:
                result.add("stream_errors", 1)
                result.errors.append(f"{dims}: {outcome.error}")
            elif not outcome.skipped and (outcome.written or not outcome.caught_up or dims in self.gaps):
                result.found = True

    def _drain(self, result: StreamStep, *, wait: float) -> None:
        """Take events off the queue until a batch is full, its delay is spent, or the connection changes."""
        batch: list[NormalizedRecord] = []
        rejected: dict[tuple[FeedDims, ...], Rejections] = {}
        deadline: float | None = None
        linger = settings.FEED_STREAM_LINGER_MS / 1000
        try:
            while True:
                # The first event is waited for up to `wait`; then the batch is stored once no event
                # has come for the linger (a lone record is not held for the whole batch delay).
                timeout = wait if deadline is None else min(deadline - time.monotonic(), linger)
                if deadline is not None and timeout <= 0:
                    break
                try:
                    event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
                except queue.Empty:
                    break
                if event.kind == "records":
                    batch.extend(event.records)
                    if event.rejected is not None and event.rejected.total:
                        rejected.setdefault(event.streams, Rejections()).merge(event.rejected)
                    if deadline is None:
                        deadline = time.monotonic() + settings.FEED_STREAM_BATCH_MS / 1000
                    if len(batch) >= settings.FEED_STREAM_BATCH_RECORDS:
                        break
                    continue
                # A connection opened or dropped: store what came before it first (the gap starts after it).
                self._store(batch, result)
                batch = []
                result.found = True
                if event.kind == "connected":
                    self._connected(event.streams)
                else:
                    self._disconnected(event.streams, event.detail, result)
                break
        finally:
            self._store(batch, result)
            for streams, rejections in rejected.items():
                result.add("rejected", rejections.total)
                for dims in streams:  # one connection serves them all: the event does not say whose it was
                    record_stream_rejections(dims=dims, rejected=rejections)

    def _store(self, batch: list[NormalizedRecord], result: StreamStep) -> None:
        if not batch:
            return
        with collect_rejections() as rejected:
            written = ingest_records(batch)
        result.add("records", written)
        result.add("rejected", rejected.total)
        result.add("streamed", len(batch))
        result.add("batches", 1)
        result.found = True

    @staticmethod
    def _watermarks(streams) -> dict[FeedDims, datetime | None]:
        found = {
            FeedDims(s.source, s.subject, s.kind, s.granularity): s.last_event_ts
            for s in FeedIngestionState.objects.filter(source__in={d.source for d in streams})
        }
        return {dims: found.get(dims) for dims in streams}

    def _connected(self, streams: tuple[FeedDims, ...]) -> None:
        now = timezone.now()
        watermarks = self._watermarks(streams)
        for dims in streams:
            self.live.add(dims)
            known = [t for t in (watermarks[dims], self.down_since.pop(dims, None)) if t is not None]
            # From just after the newest stored record: a stored (streamed) record is never re-fetched
            # and overwritten by its history version.
            start = next_cursor(dims, min(known)) if known else now - timedelta(minutes=settings.FEED_BACKFILL_MINUTES)
            # Keep an older pending start: a back-fill that had not finished must not be skipped.
            previous = self.gaps.get(dims)
            self.gaps[dims] = (min(start, previous[0]) if previous else start, now)

    def _disconnected(self, streams: tuple[FeedDims, ...], detail: str, result: StreamStep) -> None:
        watermarks = self._watermarks(streams)
        for dims in streams:
            self.live.discard(dims)
            self.down_since.setdefault(dims, watermarks[dims])
            record_stream_disconnect(dims=dims, detail=detail)
        result.add("disconnects", 1)
        result.errors.append(f"{streams[0].source} stream: {detail}")
