"""Score worker throughput and leaderboard rebuild cost, on Postgres (prints figures, asserts nothing).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coord_score \\
        /work/venv/bin/python bench/score_throughput.py [--inputs 5000 --models 20 --batch 500 --scores 1000000]

Runs in a throwaway database (`<name>_bench`, created, migrated and dropped), never in the
configured one. Part 1: N Inputs x M models of PENDING predictions and a tape that resolves them;
times `score_batch` until the queue is empty plus one leaderboard rebuild (end to end:
claim, ground truth, scoring, Score inserts, status updates, snapshot upserts). Part 2: fills
the Score table to `--scores` rows over 7 days and times `rebuild_leaderboard()` next to the
bare SQL aggregate (count-weighted window means per model) over the same rows.
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coordinator_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-not-secret")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from coordinator_site.contract import get_contract  # noqa: E402
from predictions.models import ParticipantModel, PredictionConfig  # noqa: E402
from scoring.services import rebuild_leaderboard, score_batch  # noqa: E402


def seed_round_data(*, inputs: int, models: int) -> int:
    """Inputs over the last days, every model PENDING on each, a 1m candle tape covering them."""
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=inputs + 10)
    config = PredictionConfig.objects.create(scope_key="BTC-bench", interval_seconds=60, horizon_seconds=300)
    ParticipantModel.objects.bulk_create(
        ParticipantModel(model_id=f"bench-{i:03d}", name=f"bench {i}") for i in range(models)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO feeds_feedrecord (source, subject, kind, granularity, ts_event, ts_ingested, "values", meta)
            SELECT 'synthetic', 'BTC', 'candle', '1m', %s + g * interval '1 minute', now(),
                   jsonb_build_object('close', 100 + (g * 7919) %% 23), '{}'::jsonb
            FROM generate_series(-2, %s) AS g
            """,
            [start, inputs + 8],
        )
        cursor.execute(
            """
            INSERT INTO predictions_input (config_id, scheduled_for, raw_data, scope, as_of, received_at,
                resolvable_at, status, claimed_by, attempts, last_error, expiry_reason, ticks, sample_id)
            SELECT %s, %s + g * interval '1 minute', '{}'::jsonb,
                   '{"source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m",
                     "scope_key": "BTC-bench", "horizon_seconds": 300, "step_seconds": 60}'::jsonb,
                   %s + g * interval '1 minute', %s + g * interval '1 minute',
                   %s + g * interval '1 minute' + interval '5 minutes', 'RECEIVED', '', 0, '', '', '{}'::jsonb, ''
            FROM generate_series(0, %s) AS g
            """,
            [config.pk, start, start, start, start, inputs - 1],
        )
        cursor.execute(
            """
            INSERT INTO predictions_prediction (input_id, model_id, config_id, scope_key, deployment_id, status,
                failure_reason, failure_detail, output, exec_time_us, performed_at, resolvable_at)
            SELECT i.id, m.id, i.config_id, 'BTC-bench', '', 'PENDING', '', '',
                   jsonb_build_object('p_up', ((i.id * 13 + m.id * 29) % 101) / 100.0), 1000,
                   i.scheduled_for, i.resolvable_at
            FROM predictions_input i CROSS JOIN predictions_model m
            """
        )
        cursor.execute("ANALYZE")
    return inputs * models


def drain(worker: str, batch: int) -> tuple[int, int]:
    """score_batch until the queue is empty; returns (units, predictions scored)."""
    scored = units = 0
    while True:
        result = score_batch(worker=worker, batch=batch)
        if not result.claimed:
            return units, scored
        units += 1
        scored += result.scored


def backend_cpu_seconds() -> float | None:
    """CPU time of this connection's Postgres backend so far (None unless the server runs here)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _drain_in_child(args: tuple[str, int]) -> tuple[int, int]:
    connection.close()  # a fresh connection per process
    return drain(*args)


def bench_scoring(*, inputs: int, models: int, batch: int, workers: int) -> None:
    predictions = seed_round_data(inputs=inputs, models=models)
    connection.close()
    started = time.perf_counter()
    cpu = None
    if workers == 1:
        backend_before, own_before = backend_cpu_seconds(), time.process_time()
        started = time.perf_counter()
        units, scored = drain("bench", batch)
        backend_after = backend_cpu_seconds()
        if backend_before is not None and backend_after is not None:
            cpu = (time.process_time() - own_before, backend_after - backend_before)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_drain_in_child, [(f"bench-{n}", batch) for n in range(workers)])
        units, scored = (sum(r[0] for r in results), sum(r[1] for r in results))
    scoring_seconds = time.perf_counter() - started
    rebuild_leaderboard()
    total = time.perf_counter() - started
    print(
        f"scoring: {predictions} predictions over {inputs} inputs x {models} models, "
        f"batch={batch} inputs, {workers} worker process(es)"
    )
    print(
        f"  scored {scored} in {units} units: {scoring_seconds:.2f} s ({scored / scoring_seconds:,.0f} predictions/s)"
    )
    if cpu:
        # On a shared machine the wall time swings; the CPU split shows where the work is.
        print(f"  CPU: worker process {cpu[0]:.2f} s, its Postgres backend {cpu[1]:.2f} s")
    print(f"  end to end incl. leaderboard rebuild: {total:.2f} s ({predictions / total:,.0f} predictions/s)")


def seed_scores(*, target: int) -> int:
    """Top the Score table up to `target` rows: predictions and scores over the last 7 days."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scoring_score")
        have = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM predictions_model")
        models = cursor.fetchone()[0]
        missing_inputs = max(0, -(-(target - have) // models))
        if not missing_inputs:
            return have
        config = PredictionConfig.objects.create(scope_key="BTC-history", interval_seconds=12, horizon_seconds=300)
        now = timezone.now()
        cursor.execute(
            """
            INSERT INTO predictions_input (config_id, scheduled_for, raw_data, scope, as_of, received_at,
                resolvable_at, status, claimed_by, attempts, last_error, expiry_reason, ticks, sample_id)
            SELECT %s, %s - g * (interval '7 days' / %s), '{}'::jsonb, '{}'::jsonb, NULL,
                   %s - g * (interval '7 days' / %s), %s - g * (interval '7 days' / %s), 'RESOLVED', '', 0, '', '',
                   '{}'::jsonb, ''
            FROM generate_series(1, %s) AS g
            """,
            [config.pk, now, missing_inputs, now, missing_inputs, now, missing_inputs, missing_inputs],
        )
        cursor.execute(
            """
            INSERT INTO predictions_prediction (input_id, model_id, config_id, scope_key, deployment_id, status,
                failure_reason, failure_detail, output, exec_time_us, performed_at, resolvable_at)
            SELECT i.id, m.id, i.config_id, 'BTC-history', '', 'SCORED', '', '', '{"p_up": 0.5}'::jsonb, 1000,
                   i.scheduled_for, i.resolvable_at
            FROM predictions_input i CROSS JOIN predictions_model m WHERE i.config_id = %s
            """,
            [config.pk],
        )
        cursor.execute(
            """
            INSERT INTO scoring_score (prediction_id, model_id, input_id, scope_key, performed_at, value, result,
                success, failed_reason, scored_at, late)
            SELECT p.id, p.model_id, p.input_id, p.scope_key, p.performed_at,
                   ((p.id * 7919) %% 1000) / 1000.0, '{}'::jsonb, true, '', now(), false
            FROM predictions_prediction p WHERE p.config_id = %s
            """,
            [config.pk],
        )
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM scoring_score")
        return cursor.fetchone()[0]


def bare_aggregate() -> None:
    """The same window means computed by hand: one GROUP BY model over the Score table."""
    now = timezone.now()
    windows = get_contract().aggregation.windows
    columns = ", ".join("AVG(value) FILTER (WHERE performed_at >= %s)" for _ in windows)
    cuts = [now - timedelta(hours=w.hours) for w in windows.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT model_id, {columns} FROM scoring_score WHERE performed_at >= %s AND performed_at <= %s "
            "GROUP BY model_id",
            [*cuts, min(cuts), now],
        )
        cursor.fetchall()


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def bench_leaderboard(*, scores: int, repeats: int) -> None:
    rows = seed_scores(target=scores)
    bare_aggregate()  # warm the cache for both
    bare = timed(bare_aggregate, repeats)
    rebuild = timed(rebuild_leaderboard, repeats)
    ratio = statistics.median(rebuild) / statistics.median(bare)
    print(f"leaderboard over {rows:,} scores ({repeats} runs each, median):")
    print(f"  bare SQL aggregate: {statistics.median(bare) * 1000:.0f} ms  (runs: {[round(t * 1000) for t in bare]})")
    print(
        f"  rebuild_leaderboard: {statistics.median(rebuild) * 1000:.0f} ms  (runs: {[round(t * 1000) for t in rebuild]})"
    )
    print(f"  ratio rebuild / bare: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=5000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500, help="Inputs per score_batch unit.")
    parser.add_argument("--scores", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="Scoring processes sharing the queue.")
    parser.add_argument("--skip-leaderboard", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/score_throughput.py runs on Postgres: set DATABASE_URL=postgres://...")
    connection.settings_dict["TEST"]["NAME"] = f"{connection.settings_dict['NAME']}_bench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        print(f"database: {connection.settings_dict['NAME']} (throwaway), postgres {connection.pg_version}")
        bench_scoring(inputs=args.inputs, models=args.models, batch=args.batch, workers=args.workers)
        if not args.skip_leaderboard:
            bench_leaderboard(scores=args.scores, repeats=args.repeats)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
