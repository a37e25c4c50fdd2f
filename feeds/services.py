"""Writes of the feeds app: ingestion (bulk upsert + watermark), polling, backfill, retention.

Network calls (provider.fetch/latest) always happen outside transactions; each page is stored with
its watermark/cursor update in one transaction, so a crash never leaves a page half-counted.
"""

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from coordinator_site import wakeup
from coordinator_site.boundary import Rejected, escape_text
from feeds.choices import BackfillStatus
from feeds.dims import FeedDims, NormalizedRecord, granularity_seconds
from feeds.models import BackfillJob, FeedIngestionState, FeedRecord, TapeRecovery
from feeds.providers import (
    FeedProvider,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    get_provider,
)
from feeds.providers.base import Rejections, check_record, collect_rejections, http_timeout, report_rejections

log = logging.getLogger("feeds")

PG_CHUNK = 10_000  # rows per INSERT ... SELECT FROM unnest(...) statement (pipelined)
SQLITE_CHUNK = 500  # stays under SQLite's bound-parameter limit
TICK_STEP = timedelta(microseconds=1)


def configured_dims() -> list[FeedDims]:
    """The streams this node ingests: FEED_SOURCE x FEED_SUBJECTS x FEED_KIND x FEED_GRANULARITY."""
    granularity_seconds(settings.FEED_GRANULARITY)  # fail early on a typo
    return [
        FeedDims(settings.FEED_SOURCE, subject.strip(), settings.FEED_KIND, settings.FEED_GRANULARITY)
        for subject in settings.FEED_SUBJECTS
        if subject.strip()
    ]


# --- ingestion ----------------------------------------------------------------------------


def ingest_records(records: Iterable[NormalizedRecord]) -> int:
    """Store records (insert or update by natural key) and advance each stream's watermark, in one transaction.

    Every record passes `check_record` (the feed's sanitising boundary) first: an unusable one is
    rejected with its reason code -- counted in the open `collect_rejections` and logged as one
    warning per call, not per row -- and the rest are stored. Duplicates (same stream and ts_event)
    are resolved *after* that check, so a bad row never replaces a good one: the last valid record
    wins. The watermark only moves forward (GREATEST), so back-filling old history never moves it
    backwards. Returns the number of records stored (inserted or updated).
    """
    streams: dict[tuple[str, str, str, str], dict[datetime, NormalizedRecord]] = {}
    rejected = Rejections()
    seen = 0
    for record in records:
        seen += 1
        try:
            record = check_record(record)
        except Rejected as exc:
            rejected.add(exc.code, exc.detail)
            continue
        key = (record.source, record.subject, record.kind, record.granularity)  # cheaper than record.dims
        by_ts = streams.get(key)
        if by_ts is None:
            by_ts = streams[key] = {}
        by_ts[record.ts_event] = record
    report_rejections(rejected, source="ingest", seen=seen)
    if not streams:
        return 0
    upsert = _upsert_postgres if connection.vendor == "postgresql" else _upsert_generic
    stored = 0
    now = timezone.now()
    with transaction.atomic():
        for key, by_ts in streams.items():
            dims = FeedDims(*key)
            rows = list(by_ts.values())
            inserted = upsert(dims, rows, now)
            _advance_state(dims, newest=max(by_ts), inserted=inserted)
            stored += len(rows)
        # run_predict ticks the models with the new records (sent at COMMIT, never on rollback).
        wakeup.notify(wakeup.TAPE, ",".join("/".join(key) for key in streams)[:7000])
    return stored


class _PgEncoder:
    """Turns checked records into the text parameters of INSERT_SQL/UPSERT_SQL, caching what repeats across rows.

    check_record guarantees every value is a finite float, so a record's `values` JSON is a per-key-set
    template filled with repr(float) -- exactly what json.dumps writes for floats, about twice as fast.
    Meta is usually the same small dict on every record of a page: each distinct one is encoded once,
    and a chunk whose records all share one is sent as a single value instead of an array.
    """

    def __init__(self) -> None:
        self.encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        self.templates: dict[tuple, str | None] = {}
        self.metas: dict[tuple, str] = {}

    def values_json(self, values: dict) -> str:
        keys = tuple(values)
        template = self.templates.get(keys, "")
        if template == "":
            template = self.templates[keys] = self._template(keys)
        return self.encode(values) if template is None else template % tuple(values.values())

    def _template(self, keys: tuple) -> str | None:
        if not all(isinstance(key, str) for key in keys):
            return None  # json.dumps has its own rules for non-string keys
        return "{" + ",".join(self.encode(key).replace("%", "%%") + ":%r" for key in keys) + "}"

    def meta_json(self, meta: dict | None) -> str:
        if not meta:
            return "{}"
        try:
            key = tuple(meta.items())
            found = self.metas.get(key)
        except TypeError:  # unhashable values (nested lists/dicts): encode directly
            return self.encode(meta)
        if found is None:
            found = self.metas[key] = self.encode(meta)
        return found

    def chunk_params(self, chunk: list[NormalizedRecord]) -> list[str | None]:
        """[times, values, shared meta or None, metas or None] for one chunk (never empty)."""
        times = "{" + ",".join([r.ts_event.isoformat() for r in chunk]) + "}"
        values = _pg_text_array([self.values_json(r.values) for r in chunk])
        metas = [self.meta_json(r.meta) for r in chunk]
        if metas.count(metas[0]) == len(metas):
            return [times, values, metas[0], None]
        return [times, values, None, _pg_text_array(metas)]


def _pg_text_array(items: list[str]) -> str:
    """A Postgres array literal of text elements: each quoted, with backslash and double quote escaped.

    Escapes the whole joined text at once (NUL as the separator: it cannot occur in Postgres text).
    """
    if not items:
        return "{}"
    joined = "\x00".join(items).replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + joined.replace("\x00", '","') + '"}'


_TABLE = FeedRecord._meta.db_table
INSERT_SQL = f"""
    INSERT INTO {_TABLE} (source, subject, kind, granularity, ts_event, ts_ingested, "values", meta)
    SELECT %s, %s, %s, %s, u.t, %s, u.v::jsonb, COALESCE(%s::jsonb, u.m::jsonb)
    FROM unnest(%s::timestamptz[], %s::text[], %s::text[]) AS u(t, v, m)
"""  # noqa: S608 - the table name is ours, every value is a bound parameter
UPSERT_SQL = f"""
    WITH written AS (
        {INSERT_SQL}
        ON CONFLICT (source, subject, kind, granularity, ts_event) DO UPDATE
            SET "values" = EXCLUDED."values", meta = EXCLUDED.meta, ts_ingested = EXCLUDED.ts_ingested
            WHERE {_TABLE}."values" IS DISTINCT FROM EXCLUDED."values" OR {_TABLE}.meta IS DISTINCT FROM EXCLUDED.meta
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) FROM written
"""  # noqa: S608


def _upsert_postgres(dims: FeedDims, rows: list[NormalizedRecord], now: datetime) -> int:
    """INSERT ... SELECT FROM unnest(arrays) [ON CONFLICT DO UPDATE], one statement per PG_CHUNK rows, pipelined.

    The arrays travel as array *literals* (one text parameter each) that Postgres parses server-side:
    measured much faster than psycopg adapting Python lists element by element (~5x) or
    json_to_recordset over one JSON document (~7x slower to unpack on the server). The statements go
    through psycopg's pipeline mode, so the server writes one chunk while Python encodes the next.

    A page of new history (back-fill, the bulk of the volume) has no stored row in its time range yet:
    then a plain INSERT skips ON CONFLICT's per-row speculative insertion and the RETURNING count
    (about a third of the server's time). Should another writer store a row of that range meanwhile,
    the unique violation rolls back to a savepoint and the upsert runs instead. The upsert does not
    rewrite unchanged rows (the WHERE on DO UPDATE), so re-ingesting a page is cheap.
    Returns how many rows were new (xmax = 0 on the upsert), for the maintained record_count.
    """
    head = [dims.source, dims.subject, dims.kind, dims.granularity, now]
    if _nothing_stored_between(dims, min(r.ts_event for r in rows), max(r.ts_event for r in rows)):
        try:
            with transaction.atomic():
                _execute_pipelined(INSERT_SQL, head, rows, returns_count=False)
            return len(rows)
        except IntegrityError:
            log.info("feed %s: rows appeared in the range of a new page meanwhile; upserting instead", dims)
    return _execute_pipelined(UPSERT_SQL, head, rows, returns_count=True)


def _nothing_stored_between(dims: FeedDims, first: datetime, last: datetime) -> bool:
    """One probe of the natural-key index: no stored row of the stream with first <= ts_event <= last."""
    return not FeedRecord.objects.filter(**dims.as_filter(), ts_event__range=(first, last)).exists()


def _execute_pipelined(sql: str, head: list, rows: list[NormalizedRecord], *, returns_count: bool) -> int:
    """Run `sql` once per PG_CHUNK rows in psycopg's pipeline mode; the sum of the counts it returns (or 0)."""
    encoder = _PgEncoder()
    cursors = []
    connection.ensure_connection()
    try:
        with connection.wrap_database_errors, connection.connection.pipeline():
            for i in range(0, len(rows), PG_CHUNK):
                times, values, meta, metas = encoder.chunk_params(rows[i : i + PG_CHUNK])
                cursor = connection.cursor()
                cursors.append(cursor)
                cursor.execute(sql, [*head, meta, times, values, metas])
        # Leaving the pipeline block waited for every statement: the results are there.
        return sum(cursor.fetchone()[0] for cursor in cursors) if returns_count else 0
    finally:
        for cursor in cursors:
            cursor.close()


def _upsert_generic(dims: FeedDims, rows: list[NormalizedRecord], now: datetime) -> int:
    """bulk_create(update_conflicts=True) for SQLite (and any other backend)."""
    inserted = 0
    for i in range(0, len(rows), SQLITE_CHUNK):
        chunk = rows[i : i + SQLITE_CHUNK]
        existing = FeedRecord.objects.filter(**dims.as_filter(), ts_event__in=[r.ts_event for r in chunk]).count()
        inserted += len(chunk) - existing
        FeedRecord.objects.bulk_create(
            [
                FeedRecord(**dims.as_filter(), ts_event=r.ts_event, ts_ingested=now, values=r.values, meta=r.meta or {})
                for r in chunk
            ],
            update_conflicts=True,
            unique_fields=["source", "subject", "kind", "granularity", "ts_event"],
            update_fields=["values", "meta", "ts_ingested"],
        )
    return inserted


def _advance_state(dims: FeedDims, *, newest: datetime, inserted: int) -> None:
    state, _ = FeedIngestionState.objects.get_or_create(**dims.as_filter())
    moves = Q(last_event_ts__isnull=True) | Q(last_event_ts__lt=newest)
    FeedIngestionState.objects.filter(pk=state.pk).update(
        last_event_ts=Greatest(Coalesce(F("last_event_ts"), Value(newest)), Value(newest)),
        record_count=F("record_count") + inserted,
        # updated_at doubles as "watermark moved at" (QuerySet.update never touches auto_now fields).
        updated_at=Case(When(moves, then=Value(timezone.now())), default=F("updated_at")),
    )


# --- pagination over a provider's history ---------------------------------------------------


def next_cursor(dims: FeedDims, newest: datetime) -> datetime:
    """Where the next page starts after a page whose newest record is `newest`."""
    if dims.kind == "candle":
        return newest + timedelta(seconds=granularity_seconds(dims.granularity))
    return newest + TICK_STEP


@dataclass
class RangeFill:
    written: int = 0
    pages: int = 0
    cursor: datetime | None = None
    complete: bool = False


def fill_range(
    *,
    dims: FeedDims,
    provider: FeedProvider,
    start: datetime,
    end: datetime,
    max_pages: int,
    page_size: int | None = None,
) -> RangeFill:
    """Page the provider's history over [start, end) into the tape, at most `max_pages` pages."""
    page_size = page_size or settings.FEED_PAGE_SIZE
    result = RangeFill(cursor=start)
    while result.pages < max_pages and result.cursor < end:
        page = provider.fetch(dims, result.cursor, end, page_size)
        result.pages += 1
        if not page:
            result.cursor = end
            break
        result.written += ingest_records(page)
        result.cursor = max(result.cursor, next_cursor(dims, max(r.ts_event for r in page)))
    result.complete = result.cursor >= end
    return result


# --- live polling -------------------------------------------------------------------------


@dataclass
class PollOutcome:
    """What one poll of one stream did (the worker logs it and copies errors to its heartbeat)."""

    dims: FeedDims
    written: int = 0
    skipped: bool = False
    caught_up: bool = True
    error: str = ""
    rejected: int = 0  # records the feed's boundary rejected during the pass (the good ones were stored)
    counts: dict[str, int] = field(default_factory=dict)
    cursor: datetime | None = None  # where the back-fill of this pass stopped (None: no back-fill)
    retry_at: datetime | None = None  # after an error: not before this time (the stream's backoff)


def stall_threshold(dims: FeedDims) -> timedelta:
    """A watermark older than this means the worker missed records: back-fill instead of polling."""
    return timedelta(seconds=max(2 * settings.FEED_POLL_SECONDS, 2 * granularity_seconds(dims.granularity)))


def error_backoff(*, failures: int, exc: Exception) -> float:
    """Seconds before the next attempt: the server's Retry-After, the cap for config errors, else doubling."""
    cap = settings.WORKER_ERROR_BACKOFF_MAX_SECONDS
    doubling = min(cap, settings.FEED_POLL_SECONDS * 2 ** max(0, min(failures - 1, 16)))
    if isinstance(exc, ProviderRateLimited):
        return max(exc.retry_after, doubling)
    if isinstance(exc, ProviderConfigError):
        return cap  # retrying sooner cannot fix a missing setting
    return doubling


def poll_stream(
    *, dims: FeedDims, provider: FeedProvider, max_pages: int = 100, gap_from: datetime | None = None
) -> PollOutcome:
    """One pass over one stream: back-fill from the watermark after a stall (or on first start), then poll.

    Skipped while `next_poll_at` is in the future. With `gap_from` (stream mode, after a push
    connection opened) the pass runs whatever the schedule says, back-fills from `gap_from` to now
    and does not poll `latest` (the connection delivers the newest records). A provider error -- or anything else the pass
    raises, e.g. a body no parser expected -- is recorded on the stream's FeedIngestionState
    (last_error, consecutive_errors) and pushes `next_poll_at` out by a capped backoff (or the
    server's Retry-After); it is returned, never raised, so one stream never stops the others.
    Records rejected by the feed's boundary do not fail the pass (the good ones are stored): they
    are counted in `outcome.rejected` and summarised in last_error (escaped, with last_error_at).
    """
    now = timezone.now()
    state, _ = FeedIngestionState.objects.get_or_create(**dims.as_filter())
    if gap_from is None and state.next_poll_at and state.next_poll_at > now:
        return PollOutcome(dims=dims, skipped=True)
    outcome = PollOutcome(dims=dims)
    note = ""
    failure: Exception | None = None
    with collect_rejections() as rejected:
        try:
            watermark = state.last_event_ts
            if gap_from is not None or watermark is None or now - watermark > stall_threshold(dims):
                start = gap_from or watermark or now - timedelta(minutes=settings.FEED_BACKFILL_MINUTES)
                try:
                    fill = fill_range(dims=dims, provider=provider, start=start, end=now, max_pages=max_pages)
                except ProviderConfigError as exc:
                    # No history configured (e.g. PYTH_HISTORY_URL): keep polling, but say the gap stays open.
                    note = f"gap since {start.isoformat()} not back-filled: {exc}"
                    fill = RangeFill(cursor=now, complete=True)
                outcome.written += fill.written
                outcome.caught_up = fill.complete
                outcome.cursor = fill.cursor
                outcome.counts["backfill_pages"] = fill.pages
            # A back-fill after a push connection opened stops at now: the connection brings what is newer.
            if outcome.caught_up and gap_from is None:
                outcome.written += ingest_records(provider.latest(dims))
        except Exception as exc:  # a provider error, or anything one bad answer makes a parser raise
            if not isinstance(exc, ProviderError):
                log.exception("feed %s: unexpected error", dims)
            failure = exc
            outcome.error = escape_text(f"{type(exc).__name__}: {exc}")
    outcome.rejected = rejected.total
    if rejected.total:
        outcome.counts["rejected"] = rejected.total
    if failure is not None:
        failures = state.consecutive_errors + 1
        delay = error_backoff(failures=failures, exc=failure)
        log.warning("feed %s failed (%d in a row), next attempt in %.0fs: %s", dims, failures, delay, outcome.error)
        error = "; ".join([outcome.error, *([rejected.summary()] if rejected.total else [])])
        outcome.retry_at = now + timedelta(seconds=delay)
        FeedIngestionState.objects.filter(pk=state.pk).update(
            last_polled_at=now,
            last_error=escape_text(error),
            last_error_at=now,
            consecutive_errors=F("consecutive_errors") + 1,
            next_poll_at=outcome.retry_at,
        )
        return outcome
    if note and note != state.last_error:
        log.warning("feed %s: %s", dims, note)
    if rejected.total:
        note = "; ".join([*([note] if note else []), rejected.summary()])
    note = escape_text(note)
    # Not caught up yet (page budget spent): come back at once rather than after the poll interval.
    wait = timedelta(seconds=settings.FEED_POLL_SECONDS) if outcome.caught_up else timedelta(0)
    FeedIngestionState.objects.filter(pk=state.pk).update(
        last_polled_at=now,
        last_error=note,
        last_error_at=now if note else state.last_error_at,
        consecutive_errors=0,
        next_poll_at=now + wait,
    )
    outcome.counts["records"] = outcome.written
    return outcome


def record_stream_disconnect(*, dims: FeedDims, detail: str) -> None:
    """A push connection dropped (stream mode): say so on the stream; polling covers it until it is back.

    Not counted in consecutive_errors: the connection is retried with its own backoff, and the
    back-fill after the reconnect (poll_stream with gap_from) records its own failures."""
    now = timezone.now()
    state, _ = FeedIngestionState.objects.get_or_create(**dims.as_filter())
    FeedIngestionState.objects.filter(pk=state.pk).update(
        last_error=escape_text(f"stream disconnected: {detail}"), last_error_at=now
    )


def record_stream_rejections(*, dims: FeedDims, rejected: Rejections) -> None:
    """Records a push connection delivered that the boundary rejected: summarised on the stream, as a poll does.

    Not a stream error (no backoff, consecutive_errors untouched); the good records were stored."""
    FeedIngestionState.objects.filter(**dims.as_filter()).update(
        last_error=escape_text(rejected.summary()), last_error_at=timezone.now()
    )


# --- gap fetch (the resolver's tape-first recovery) --------------------------------------------


@dataclass
class GapFetch:
    """What one `fetch_gap` call did (its caller logs it; the stream's TapeRecovery row keeps the last ask)."""

    dims: FeedDims
    start: datetime
    end: datetime
    asked: bool = False  # a request went to the provider
    written: int = 0  # records stored from its answer
    error: str = ""  # why the ask failed ("" when it answered, even with nothing)
    skipped: str = ""  # why nothing was asked (another ask of this stream is too recent)
    seconds: float = 0.0


def fetch_gap(
    *,
    dims: FeedDims,
    start: datetime,
    end: datetime,
    timeout: float,
    min_interval: float | None = None,
    limit: int | None = None,
) -> GapFetch:
    """Ask the stream's provider once for [start, end) and store the records the tape lacks through `ingest_records`.

    Bounded twice. Per stream: at most one ask per `min_interval` seconds (default
    GROUND_TRUTH_FETCH_INTERVAL_SECONDS) across every process, claimed with a conditional UPDATE
    of the stream's TapeRecovery row; when that is not due nothing is asked (`skipped` says until
    when). In time: the provider runs in a daemon thread with `timeout` seconds (each of its HTTP
    requests waits at most that long too); an answer later than that is dropped, never stored, so
    a hanging provider costs the caller `timeout`, not its own timeouts. A 429 pushes the stream's
    next ask to the server's Retry-After. Never raises: the error is returned and kept on the row.
    The network call runs outside any transaction; its page is stored in one (ingest)."""
    outcome = GapFetch(dims, start, end)
    now = timezone.now()
    interval = settings.GROUND_TRUTH_FETCH_INTERVAL_SECONDS if min_interval is None else min_interval
    if timeout <= 0:
        outcome.skipped = "no time left for a fetch"
        return outcome
    row, _ = TapeRecovery.objects.get_or_create(**dims.as_filter())
    due = Q(next_fetch_at__isnull=True) | Q(next_fetch_at__lte=now)
    claimed = TapeRecovery.objects.filter(due, pk=row.pk).update(
        next_fetch_at=now + timedelta(seconds=interval),
        last_fetch_at=now,
        window_start=start,
        window_end=end,
        fetches=F("fetches") + 1,
        records_written=0,
        last_error="",
        elapsed_ms=0,
    )
    if not claimed:
        outcome.skipped = f"asked at {row.last_fetch_at.isoformat() if row.last_fetch_at else '?'}; not again before "
        outcome.skipped += row.next_fetch_at.isoformat() if row.next_fetch_at else "?"
        return outcome
    outcome.asked = True
    began = time.monotonic()
    retry_at = None
    try:
        page = _fetch_within(dims, start, end, limit or settings.FEED_PAGE_SIZE, timeout)
        # It fills the tape, never rewrites it: a stored record may already have priced an Input.
        stored = set(
            FeedRecord.objects.filter(**dims.as_filter(), ts_event__gte=start, ts_event__lt=end).values_list(
                "ts_event", flat=True
            )
        )
        outcome.written = ingest_records([r for r in page if r.ts_event not in stored])
    except Exception as exc:  # a provider error, the time box, or whatever one bad answer raises
        if not isinstance(exc, ProviderError):
            log.warning("gap fetch %s: unexpected error", dims, exc_info=True)
        if isinstance(exc, ProviderRateLimited):
            retry_at = now + timedelta(seconds=max(interval, exc.retry_after))
        outcome.error = escape_text(f"{type(exc).__name__}: {exc}")
    outcome.seconds = time.monotonic() - began
    TapeRecovery.objects.filter(pk=row.pk).update(
        records_written=outcome.written,
        last_error=outcome.error,
        elapsed_ms=round(outcome.seconds * 1000),
        **({"next_fetch_at": retry_at} if retry_at else {}),
    )
    what = f"error: {outcome.error}" if outcome.error else f"stored {outcome.written} record(s)"
    log.info("gap fetch: asked %s for [%s, %s) in %.2fs, %s", dims, start, end, outcome.seconds, what)
    return outcome


def _fetch_within(dims: FeedDims, start: datetime, end: datetime, limit: int, timeout: float) -> list:
    """`provider.fetch` in a daemon thread, waited for at most `timeout` seconds (ProviderUnavailable after).

    The thread only talks to the provider (no database): a late answer is simply dropped."""
    answer: dict[str, Any] = {}
    done = threading.Event()

    def ask() -> None:
        try:
            with http_timeout(timeout):
                answer["page"] = get_provider(dims.source).fetch(dims, start, end, limit)
        except BaseException as exc:  # handed to the caller's thread
            answer["error"] = exc
        finally:
            done.set()

    threading.Thread(target=ask, name=f"gap-fetch {dims}", daemon=True).start()
    if not done.wait(timeout):
        raise ProviderUnavailable(f"{dims.source}: no answer within the {timeout:.2f}s time box")
    if "error" in answer:
        raise answer["error"]
    return answer["page"]


# --- retention ----------------------------------------------------------------------------


def prune_records(*, older_than: datetime | None = None, batch_size: int = 10_000, max_batches: int = 10) -> int:
    """Delete records with ts_event before the cutoff (default now - FEED_RECORD_TTL_DAYS) in small batches.

    Each batch is its own transaction (short locks on a big tape) and keeps record_count in step.
    Returns the number of rows deleted; call again while it returns a full budget.
    """
    cutoff = older_than or timezone.now() - timedelta(days=settings.FEED_RECORD_TTL_DAYS)
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(FeedRecord.objects.filter(ts_event__lt=cutoff).values_list("id", flat=True)[:batch_size])
            if not ids:
                break
            per_stream = (
                FeedRecord.objects.filter(id__in=ids)
                .values("source", "subject", "kind", "granularity")
                .annotate(n=Count("id"))
                .order_by()
            )
            for row in per_stream:
                n = row.pop("n")
                FeedIngestionState.objects.filter(**row).update(record_count=Greatest(F("record_count") - n, Value(0)))
            deleted += FeedRecord.objects.filter(id__in=ids).delete()[0]
        if len(ids) < batch_size:
            break
    if deleted:
        log.info("retention: deleted %d record(s) older than %s", deleted, cutoff.isoformat())
    return deleted


# --- backfill jobs ------------------------------------------------------------------------


class BackfillBusy(Exception):
    """The job is held by a live worker (its lease has not expired)."""


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired); stop without writing."""


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def backfill_job_open(*, dims: FeedDims, start: datetime, end: datetime) -> BackfillJob:
    """The unfinished job for exactly this stream and range (so a dead run is resumed), or a new one."""
    if start >= end:
        raise ValueError(f"backfill start {start.isoformat()} must be before end {end.isoformat()}")
    granularity_seconds(dims.granularity)
    job = (
        BackfillJob.objects.filter(**dims.as_filter(), start=start, end=end)
        .exclude(status=BackfillStatus.COMPLETED)
        .order_by("-created_at")
        .first()
    )
    return job or BackfillJob.objects.create(**dims.as_filter(), start=start, end=end, cursor=start)


def backfill_job_claim(*, job: BackfillJob, worker: str) -> BackfillJob:
    """Take the job with a conditional UPDATE: pending, failed, or running under an expired lease.

    Raises BackfillBusy when a live worker holds it. The cursor is kept, so work resumes where the
    previous holder stopped.
    """
    now = timezone.now()
    lease = now + timedelta(seconds=settings.FEED_BACKFILL_LEASE_SECONDS)
    claimable = Q(status__in=[BackfillStatus.PENDING, BackfillStatus.FAILED]) | Q(
        status=BackfillStatus.RUNNING, lease_until__lte=now
    )
    changed = BackfillJob.objects.filter(claimable, pk=job.pk).update(
        status=BackfillStatus.RUNNING, claimed_by=worker, lease_until=lease, error="", updated_at=now
    )
    job.refresh_from_db()
    if not changed:
        if job.status == BackfillStatus.COMPLETED:
            return job
        raise BackfillBusy(f"backfill job {job.pk} is {job.status}, held by {job.claimed_by} until {job.lease_until}")
    if job.cursor is None:
        job.cursor = job.start
    log.info("backfill job %s claimed by %s at cursor %s", job.pk, worker, job.cursor.isoformat())
    return job


@dataclass
class BackfillRunRejections:
    """Records rejected during one claim of a job (kept on the job object by backfill_job_step)."""

    rejections: Rejections = field(default_factory=Rejections)
    first_page_at: datetime | None = None  # the cursor of the first page that had a rejected record

    def error(self) -> str:
        return escape_text(
            f"{self.rejections.summary()}; from the page at {self.first_page_at.isoformat()}", max_chars=4000
        )


def _run_rejections(job: BackfillJob) -> BackfillRunRejections:
    run = getattr(job, "run_rejections", None)
    if run is None:
        run = job.run_rejections = BackfillRunRejections()
    return run


def backfill_job_step(*, job: BackfillJob, provider: FeedProvider, worker: str, page_size: int | None = None) -> int:
    """Fetch one page from the job's cursor and store it with the cursor/lease update in one transaction.

    Returns the records written by this page; marks the job completed when the cursor reaches `end`.
    Records rejected by the feed's boundary never stop the run (the page's good records are stored);
    they are summarised in the job's `error` as they come, and when the cursor reaches `end` a run
    that had any ends FAILED instead of completed, lease released, cursor set back to the first page
    that had one (so a re-run after fixing the source re-fetches from there; re-ingest is idempotent).
    Raises LeaseLost (writing nothing) if another worker took the job over meanwhile.
    """
    dims = FeedDims(job.source, job.subject, job.kind, job.granularity)
    page_at = job.cursor
    run = _run_rejections(job)
    with collect_rejections() as rejected:
        page = provider.fetch(
            dims, job.cursor, job.end, page_size or settings.FEED_PAGE_SIZE
        )  # outside the transaction
        cursor = job.end if not page else max(job.cursor, next_cursor(dims, max(r.ts_event for r in page)))
        cursor = min(cursor, job.end)
        done = cursor >= job.end
        now = timezone.now()
        with transaction.atomic():
            written = ingest_records(page)
            if rejected.total:
                run.rejections.merge(rejected)
                run.first_page_at = run.first_page_at or page_at
            failed = done and run.rejections.total > 0
            status = BackfillStatus.FAILED if failed else BackfillStatus.COMPLETED if done else BackfillStatus.RUNNING
            changed = BackfillJob.objects.filter(pk=job.pk, status=BackfillStatus.RUNNING, claimed_by=worker).update(
                cursor=run.first_page_at if failed else cursor,
                records_written=F("records_written") + written,
                pages_fetched=F("pages_fetched") + 1,
                lease_until=None if failed else now + timedelta(seconds=settings.FEED_BACKFILL_LEASE_SECONDS),
                status=status,
                error=run.error() if run.rejections.total else "",
                updated_at=now,
            )
            if not changed:
                raise LeaseLost(f"backfill job {job.pk} was taken over; page at {job.cursor.isoformat()} not stored")
    job.cursor = run.first_page_at if failed else cursor
    job.records_written += written
    job.pages_fetched += 1
    job.status = status
    job.error = run.error() if run.rejections.total else ""
    return written


def backfill_job_fail(*, job: BackfillJob, worker: str, error: str, cursor: datetime | None = None) -> None:
    """Record a failure (the error escaped, the lease released); the job can be resumed later from its
    cursor -- or from `cursor` when given. If this run had rejected records, their summary is added
    and the cursor goes back to the first page that had one (so a re-run re-fetches it)."""
    run = _run_rejections(job)
    if run.rejections.total:
        if error != run.error():
            error = f"{error}; {run.error()}"
        cursor = min(cursor or job.cursor, run.first_page_at)
    fields = {"cursor": cursor} if cursor is not None else {}
    BackfillJob.objects.filter(pk=job.pk, status=BackfillStatus.RUNNING, claimed_by=worker).update(
        status=BackfillStatus.FAILED,
        error=escape_text(error, max_chars=4000),
        lease_until=None,
        updated_at=timezone.now(),
        **fields,
    )


def backfill_job_release(*, job: BackfillJob, worker: str) -> None:
    """Give the job up on purpose (page budget spent): still running, but claimable at once from its cursor.

    If this run had rejected records, the job fails instead (see backfill_job_step), so that a later
    run cannot complete the range without re-fetching the pages that had them.
    """
    run = _run_rejections(job)
    if run.rejections.total:
        backfill_job_fail(job=job, worker=worker, error=run.error(), cursor=run.first_page_at)
        job.status, job.cursor, job.error = BackfillStatus.FAILED, run.first_page_at, run.error()
        return
    BackfillJob.objects.filter(pk=job.pk, status=BackfillStatus.RUNNING, claimed_by=worker).update(
        lease_until=timezone.now(), updated_at=timezone.now()
    )
