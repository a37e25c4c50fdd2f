"""Replay a CSV file of candles or ticks (backtests), from FEED_CSV_PATH.

Columns (header row required, extra columns ignored):
  ts_event   ISO 8601 with offset (2026-11-02T00:00:00Z) or Unix seconds; a candle's OPEN time
  subject    optional; when present only rows of the requested subject are used
  price      ticks
  open, high, low, close, volume   candles (volume optional)
`latest` replays the newest row at or before now; `fetch` pages the file by time.
"""

import csv
import os
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from feeds.dims import FeedDims, NormalizedRecord
from feeds.providers.base import ProviderConfigError, RecordRejected, parse_page

TICK_COLUMNS = ("price",)
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")


def parse_time(raw: str) -> datetime:
    raw = (raw or "").strip()
    if not raw:
        raise RecordRejected("missing field 'ts_event'")
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RecordRejected(f"ts_event is neither ISO 8601 nor Unix seconds: {raw!r}") from None
    if parsed.tzinfo is None:
        raise RecordRejected(f"ts_event has no UTC offset: {raw!r}")
    return parsed


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
            with open(self.path, newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.DictReader(handle) if row.get("subject") in (None, "", dims.subject)]
            records = parse_page(rows, lambda row: self._parse(dims, row), source=self.source)
            records.sort(key=lambda r: r.ts_event)
            by_dims[dims] = records
        return by_dims[dims]

    def _parse(self, dims: FeedDims, row: dict) -> NormalizedRecord:
        columns = CANDLE_COLUMNS if dims.kind == "candle" else TICK_COLUMNS
        values = {name: row[name] for name in columns if row.get(name) not in (None, "")}
        return NormalizedRecord(
            self.source, dims.subject, dims.kind, dims.granularity, parse_time(row.get("ts_event")), values, {}
        )

    def fetch(self, dims: FeedDims, start: datetime, end: datetime, limit: int) -> list[NormalizedRecord]:
        records = self._records(dims)
        times = [r.ts_event for r in records]
        lo, hi = bisect_left(times, start), bisect_left(times, end)
        return records[lo : min(hi, lo + limit)]

    def latest(self, dims: FeedDims) -> list[NormalizedRecord]:
        records = self._records(dims)
        index = bisect_right([r.ts_event for r in records], timezone.now())
        return records[index - 1 : index] if index else []
