"""Replay a CSV file of candles or ticks (backtests), from FEED_CSV_PATH.

Columns (header row required, extra columns ignored):
  ts_event   ISO 8601 with offset (2026-11-02T00:00:00Z) or Unix seconds; a candle's OPEN time
  subject    optional; when present only rows of the requested subject are used
  price      ticks
  open, high, low, close, volume   candles (volume optional)
`latest` replays the newest row at or before now; `fetch` pages the file by time.

One record per line (a quoted field cannot span lines). The file is read line by line with bounded
memory: a line longer than MAX_LINE_CHARS, a used field longer than MAX_FIELD_CHARS, bytes that are
not UTF-8 or a NUL (UNSTORABLE_TEXT) reject that row only, with its line number; the good rows of the
file are still replayed. Several valid rows with the same ts_event: the last one in the file wins
(rejected rows are dropped first, so a bad row never replaces a good one).
"""

import csv
import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from coordinator_site.boundary import TOO_LARGE, Rejected, clean_text
from feeds.dims import FeedDims, NormalizedRecord
from feeds.providers.base import (
    BAD_TIMESTAMP,
    DIMS_MAX_CHARS,
    MALFORMED,
    MISSING_FIELD,
    ProviderConfigError,
    check_record,
    check_ts_event,
    parse_page,
)

TICK_COLUMNS = ("price",)
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
MAX_LINE_CHARS = 4096  # a candle row is under 200 characters; anything this long is not a record
MAX_FIELD_CHARS = 64  # ts_event and the value columns (a float's text is at most ~25 characters)
_READ_CHUNK = 1 << 16  # how an over-long line is skipped: in chunks, never held whole in memory


def parse_time(raw: str) -> datetime:
    """ts_event from ISO 8601 with an offset or Unix seconds, within the feed's bounds; else Rejected."""
    raw = (raw or "").strip()
    if not raw:
        raise Rejected(MISSING_FIELD, "missing field 'ts_event'")
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        try:
            return check_ts_event(datetime.fromtimestamp(seconds, tz=UTC))
        except (OverflowError, OSError, ValueError):
            raise Rejected(BAD_TIMESTAMP, f"ts_event {raw!r} is outside [1970, 2200)") from None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(BAD_TIMESTAMP, f"ts_event is neither ISO 8601 nor Unix seconds: {raw!r}") from None
    if parsed.tzinfo is None:
        raise Rejected(BAD_TIMESTAMP, f"ts_event has no UTC offset: {raw!r}")
    return check_ts_event(parsed)


def read_lines(handle) -> Iterator[tuple[int, str | Rejected]]:
    """(line number, text) for each non-empty line, or (line number, Rejected) for one too long to be a
    record -- read in chunks and dropped, so even a gigabyte without a newline costs no memory."""
    number = 0
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            length = len(line)
            while line and not line.endswith(("\n", "\r")):
                line = handle.readline(_READ_CHUNK)
                length += len(line)
            yield number, Rejected(TOO_LARGE, f"line {number} is {length} characters long (at most {MAX_LINE_CHARS})")
        elif line.strip():
            yield number, line


def split_line(number: int, line: str) -> list[str]:
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration) as exc:
        raise Rejected(MALFORMED, f"line {number}: {exc}") from None


class CsvProvider:
    source = "csv"

    def __init__(self, path: str | None = None) -> None:
        self.path = path if path is not None else settings.FEED_CSV_PATH
        self._cache: tuple[tuple, dict[FeedDims, list[NormalizedRecord]]] | None = None

    def _records(self, dims: FeedDims) -> list[NormalizedRecord]:
        if not self.path:
            raise ProviderConfigError("FEED_CSV_PATH is not set: the csv source replays that file")
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise ProviderConfigError(f"FEED_CSV_PATH={self.path!r} cannot be read: {exc}") from exc
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, {})
        by_dims = self._cache[1]
        if dims not in by_dims:
            by_dims[dims] = self._read(dims)
        return by_dims[dims]

    def _read(self, dims: FeedDims) -> list[NormalizedRecord]:
        """The file's valid rows for `dims`, one per ts_event (the last valid one), oldest first."""
        try:
            # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate, rejected with its row
            # (a strict decode would fail the whole file on one bad byte).
            with open(self.path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
                lines = read_lines(handle)
                header = self._header(next(lines, None))
                rows = [(number, line) for number, line in lines]
        except OSError as exc:
            raise ProviderConfigError(f"FEED_CSV_PATH={self.path!r} cannot be read: {exc}") from exc
        records = parse_page(rows, lambda row: self._parse(dims, header, *row), source=self.source)
        by_ts = {record.ts_event: record for record in records}  # last valid row wins
        return sorted(by_ts.values(), key=lambda r: r.ts_event)

    def _header(self, first: tuple[int, str | Rejected] | None) -> list[str]:
        if first is None:
            return []
        number, line = first
        try:
            if isinstance(line, Rejected):
                raise line
            names = split_line(number, line)
            return [clean_text(name.strip(), field="header", max_chars=MAX_FIELD_CHARS) for name in names]
        except Rejected as exc:
            raise ProviderConfigError(f"FEED_CSV_PATH={self.path!r}: unreadable header row: {exc}") from None

    def _parse(self, dims: FeedDims, header: list[str], number: int, line: str | Rejected) -> NormalizedRecord | None:
        if isinstance(line, Rejected):
            raise line
        row = dict(zip(header, split_line(number, line), strict=False))
        try:
            subject = row.get("subject")
            if subject:
                clean_text(subject, field="subject", max_chars=DIMS_MAX_CHARS["subject"])
                if subject != dims.subject:
                    return None  # another subject's row: not ours, not rejected
            columns = CANDLE_COLUMNS if dims.kind == "candle" else TICK_COLUMNS
            used = {name: row[name] for name in ("ts_event", *columns) if row.get(name) not in (None, "")}
            for name, text in used.items():
                clean_text(text, field=name, max_chars=MAX_FIELD_CHARS)
            values = {name: used[name] for name in columns if name in used}
            ts_event = parse_time(used.get("ts_event", ""))
            record = NormalizedRecord(self.source, dims.subject, dims.kind, dims.granularity, ts_event, values, {})
            return check_record(record)  # here, so that a rejection names its line
        except Rejected as exc:
            raise Rejected(exc.code, f"line {number}: {exc.detail}") from None

    def fetch(self, dims: FeedDims, start: datetime, end: datetime, limit: int) -> list[NormalizedRecord]:
        records = self._records(dims)
        times = [r.ts_event for r in records]
        lo, hi = bisect_left(times, start), bisect_left(times, end)
        return records[lo : min(hi, lo + limit)]

    def latest(self, dims: FeedDims) -> list[NormalizedRecord]:
        records = self._records(dims)
        index = bisect_right([r.ts_event for r in records], timezone.now())
        return records[index - 1 : index] if index else []
