"""Benchmark (not a test): ingest N synthetic candles through feeds.services.ingest_records on Postgres,
and COPY the same rows into a table of identical shape (same indexes) in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coord_feeds SECRET_KEY=x \
        /work/venv/bin/python bench/feeds_ingest.py [--records 1000000] [--page 100000]

Targets (issue 3): ingest >= 50,000 records/s and >= 0.3 x the COPY rate.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coordinator_site.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from feeds.dims import FeedDims  # noqa: E402
from feeds.models import FeedIngestionState, FeedRecord  # noqa: E402
from feeds.providers.synthetic import SyntheticProvider  # noqa: E402
from feeds.services import ingest_records  # noqa: E402

DIMS = FeedDims("synthetic", "BENCH", "candle", "1m")
COPY_TABLE = "bench_feedrecord_copy"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=100_000, help="records per ingest_records call")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a Postgres database")

    started = time.perf_counter()
    records = SyntheticProvider(seed=1).window(DIMS, datetime(2024, 1, 1, tzinfo=UTC), args.records)
    print(f"generated {len(records):,} synthetic 1m candles in {time.perf_counter() - started:.1f}s (not timed below)")

    FeedRecord.objects.filter(**DIMS.as_filter()).delete()
    FeedIngestionState.objects.filter(**DIMS.as_filter()).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        cursor.execute(f"CREATE TABLE {COPY_TABLE} (LIKE {FeedRecord._meta.db_table} INCLUDING ALL)")
        cursor.execute("VACUUM ANALYZE " + FeedRecord._meta.db_table)

    # 1) The production path: validation, dedupe, pipelined INSERT ... SELECT FROM unnest (pages of new
    #    history take the plain INSERT; the re-ingest below takes ON CONFLICT DO UPDATE), watermark.
    started = time.perf_counter()
    stored = 0
    for i in range(0, len(records), args.page):
        stored += ingest_records(records[i : i + args.page])
    ingest_s = time.perf_counter() - started
    assert stored == len(records) == FeedRecord.objects.filter(**DIMS.as_filter()).count()

    # 2) Plain COPY of the same rows (same JSON encoding) into a table with the same columns and indexes.
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    now = timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        columns = 'source, subject, kind, granularity, ts_event, ts_ingested, "values", meta'
        with cursor.cursor.copy(f"COPY {COPY_TABLE} ({columns}) FROM STDIN") as copy:
            for r in records:
                copy.write_row(
                    (r.source, r.subject, r.kind, r.granularity, r.ts_event, now, dumps(r.values), dumps(r.meta))
                )
    copy_s = time.perf_counter() - started

    # 3) Idempotent re-ingest of the same rows (all conflicts, nothing changed).
    started = time.perf_counter()
    for i in range(0, len(records), args.page):
        ingest_records(records[i : i + args.page])
    again_s = time.perf_counter() - started

    n = len(records)
    ingest_rate, copy_rate = n / ingest_s, n / copy_s
    print(f"ingest_records : {n:,} records in {ingest_s:.2f}s = {ingest_rate:,.0f} records/s")
    print(f"COPY           : {n:,} records in {copy_s:.2f}s = {copy_rate:,.0f} records/s")
    print(f"re-ingest      : {n:,} records in {again_s:.2f}s = {n / again_s:,.0f} records/s (all conflicts)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average   : {load} (1, 5, 15 min) on {os.cpu_count()} CPUs -- other work skews both rates")
    print(
        f"ratio ingest/COPY = {ingest_rate / copy_rate:.2f} (target >= 0.30); target >= 50,000 records/s: "
        f"{'met' if ingest_rate >= 50_000 and ingest_rate / copy_rate >= 0.3 else 'NOT met'}"
    )

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {COPY_TABLE}")
    FeedRecord.objects.filter(**DIMS.as_filter()).delete()
    FeedIngestionState.objects.filter(**DIMS.as_filter()).delete()


if __name__ == "__main__":
    main()
