"""Replay and backtest speed, on Postgres (prints figures, asserts nothing).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coord_replay \\
        /work/venv/bin/python bench/replay_speed.py [--models 100 --days 7 --backtest-models 10 --backtest-days 1]

Runs in a throwaway database (`<name>_replaybench`, created, migrated and dropped). Seeds a
"live" store the way the workers leave it: `--models` models answering every 1-minute slot for
`--days` days (a 1m candle tape resolving them), scored by `score_batch` one Input per unit at
its own clock (as a live score worker draining each minute), the last LEADERBOARD_HISTORY
leaderboards rebuilt at their minutes, the weekly checkpoint built. Then:

1. `replay_range` over the week: copy, every score batch, every retained leaderboard, the
   checkpoint, the comparison; predictions/s and the ratio to real time.
2. `replay_range(backtest_models=…)`: `--backtest-models` model folders run over the first
   `--backtest-days` day(s) of stored Inputs and scored against the live models; ratio to real time.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coordinator_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-not-secret")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from checkpoints.selectors import aligned_period  # noqa: E402
from checkpoints.services import build_checkpoint  # noqa: E402
from predictions.models import ParticipantModel, PredictionConfig  # noqa: E402
from replay.services import replay_range  # noqa: E402
from scoring.services import rebuild_leaderboard, score_batch  # noqa: E402

HORIZON = timedelta(minutes=5)
WINDOW = 20  # records in each Input's window


def seed(*, start: datetime, minutes: int, models: int) -> None:
    """Inputs every minute from `start`, each answered by every model (PENDING), a 1m tape, and
    the window the models saw in each Input's raw_data."""
    config = PredictionConfig.objects.create(
        scope_key="BTC-bench", interval_seconds=60, horizon_seconds=300, next_run_at=start + timedelta(minutes=minutes)
    )
    ParticipantModel.objects.bulk_create(
        ParticipantModel(model_id=f"bench-{i:03d}", name=f"bench {i}", cruncher_index=i, first_seen_at=start)
        for i in range(models)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO feeds_feedrecord (source, subject, kind, granularity, ts_event, ts_ingested, "values", meta)
            SELECT 'synthetic', 'BTC', 'candle', '1m', %s + g * interval '1 minute', now(),
                   jsonb_build_object('close', 100 + (g * 7919) %% 23), '{}'::jsonb
            FROM generate_series(-%s, %s) AS g
            """,
            [start, WINDOW + 2, minutes + 8],
        )
        # raw_data: the last WINDOW closes before the slot (what the predict worker stores).
        cursor.execute(
            """
            INSERT INTO predictions_input (config_id, scheduled_for, raw_data, scope, as_of, received_at,
                resolvable_at, status, claimed_by, attempts, last_error, expiry_reason, ticks, sample_id)
            SELECT %s, t, jsonb_build_object('subject', 'BTC', 'as_of', t, 'records',
                       (SELECT jsonb_agg(jsonb_build_object('ts_event', f.ts_event, 'close', f."values"->'close')
                                         ORDER BY f.ts_event)
                        FROM feeds_feedrecord f
                        WHERE f.ts_event >= t - make_interval(mins => %s) AND f.ts_event < t)),
                   '{"source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m",
                     "scope_key": "BTC-bench", "horizon_seconds": 300, "step_seconds": 60}'::jsonb,
                   t, t, t + interval '5 minutes', 'RECEIVED', '', 0, '', '', '{}'::jsonb, ''
            FROM (SELECT %s + g * interval '1 minute' AS t FROM generate_series(0, %s) AS g) AS slots
            """,
            [config.pk, WINDOW + 1, start, minutes - 1],
        )
        cursor.execute(
            """
            INSERT INTO predictions_prediction (input_id, model_id, config_id, scope_key, deployment_id, status,
                failure_reason, failure_detail, output, exec_time_us, performed_at, resolvable_at)
            SELECT i.id, m.id, i.config_id, 'BTC-bench', '',
                   CASE WHEN (i.id * 31 + m.id * 17) % 50 = 0 THEN 'ABSENT' ELSE 'PENDING' END, '', '',
                   CASE WHEN (i.id * 31 + m.id * 17) % 50 = 0 THEN NULL
                        ELSE jsonb_build_object('p_up', ((i.id * 13 + m.id * 29) % 101) / 100.0) END,
                   1000, i.scheduled_for, i.resolvable_at
            FROM predictions_input i CROSS JOIN predictions_model m
            """
        )
        cursor.execute("ANALYZE")


def live_workers(*, start: datetime, minutes: int, per_unit: int) -> tuple[float, int]:
    """What run_score would have done: `per_unit` Inputs per unit (1 = a worker keeping up, one
    Input a minute) scored at the last one's resolvable minute (+1 s), a leaderboard after each of
    the last LEADERBOARD_HISTORY units. Returns (seconds, units)."""
    clock = time.perf_counter()
    keep_boards = settings.LEADERBOARD_HISTORY
    units = range(0, minutes, per_unit)
    for u, n in enumerate(units):
        at = start + timedelta(minutes=min(n + per_unit, minutes) - 1) + HORIZON + timedelta(seconds=1)
        score_batch(worker="bench-live", batch=500, now=at)
        if u >= len(units) - keep_boards:
            rebuild_leaderboard(now=at + timedelta(milliseconds=500))
    return time.perf_counter() - clock, len(units)


def backtest_models(workdir: Path, n: int) -> list[str]:
    """`n` momentum-like model folders (different lookbacks), next to the examples' base class."""
    example = Path(settings.BASE_DIR) / "examples" / "models" / "momentum" / "main.py"
    paths = []
    for i in range(n):
        folder = workdir / f"bt{i:02d}"
        folder.mkdir()
        (folder / "main.py").write_text(example.read_text().replace("lookback = 20", f"lookback = {5 + i}"))
        paths.append(str(folder))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--backtest-models", type=int, default=10)
    parser.add_argument("--backtest-days", type=float, default=1)
    parser.add_argument("--live-inputs-per-unit", type=int, default=1, help="Inputs per live score unit.")
    parser.add_argument("--skip-exact", action="store_true", help="Only the coalesced replay.")
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/replay_speed.py runs on Postgres: set DATABASE_URL=postgres://...")
    connection.settings_dict["TEST"]["NAME"] = f"{connection.settings_dict['NAME']}_replaybench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    workdir = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    try:
        print(f"database: {connection.settings_dict['NAME']} (throwaway), postgres {connection.pg_version}")
        # A weekly checkpoint period that ended weeks ago.
        start = aligned_period(datetime.now(tz=UTC) - timedelta(days=28), interval_seconds=604800).start
        minutes = int(args.days * 1440)
        clock = time.perf_counter()
        seed(start=start, minutes=minutes, models=args.models)
        predictions = minutes * args.models
        print(
            f"seeded {minutes} inputs x {args.models} models = {predictions:,} predictions in {time.perf_counter() - clock:.1f} s"
        )
        live, units = live_workers(start=start, minutes=minutes, per_unit=args.live_inputs_per_unit)
        print(
            f"live scoring: {units} score units of {args.live_inputs_per_unit} input(s), "
            f"{settings.LEADERBOARD_HISTORY} leaderboards: {live:.1f} s"
        )
        period = aligned_period(start)
        end = start + timedelta(minutes=minutes)
        if period.end <= end + HORIZON + timedelta(minutes=1):
            # Built once settled, as run_checkpoint would: after the last live unit's clock
            # (the period's last Inputs resolve a horizon after its end).
            built_at = max(period.end, end + HORIZON) + timedelta(minutes=1)
            build_checkpoint(period=period, readiness="settled: bench", now=built_at)
        modes = [] if args.skip_replay else ([True] if args.skip_exact else [False, True])
        for coalesce in modes:
            clock = time.perf_counter()
            replay_end = period.end if period.end <= end + timedelta(hours=1) else end
            row = replay_range(start=start, end=replay_end, coalesce=coalesce)
            took = time.perf_counter() - clock
            report = row.report
            print(
                f"replay{' --coalesce' if coalesce else ''} of {args.days:g} day(s): {took:.1f} s wall "
                f"({report['seconds']:.1f} s in the child), {report['scores']['compared']:,} scores compared, "
                f"{report['events']['score_batches']} score_batch calls, "
                f"{report['leaderboards']['compared']} leaderboards, {report['checkpoints']['compared']} checkpoint(s), "
                f"identical={report['identical']}"
            )
            print(
                f"  {predictions / took:,.0f} predictions/s; {args.days * 86400 / took:,.0f}x real time "
                f"(target: <= 300 s for 1M predictions)"
            )
            phases = ", ".join(f"{name} {value:.1f}" for name, value in report["phase_seconds"].items())
            print(f"  seconds by phase: {phases}")
        paths = backtest_models(workdir, args.backtest_models)
        bt_end = start + timedelta(days=args.backtest_days)
        clock = time.perf_counter()
        row = replay_range(start=start, end=bt_end, backtest_models=paths, coalesce=True)
        took = time.perf_counter() - clock
        backtest = row.report["backtest"]
        made = sum(m["predictions"] for m in backtest["models"].values())
        print(
            f"backtest of {args.backtest_models} models over {args.backtest_days:g} day(s) "
            f"({backtest['inputs']} inputs, {made:,} backtest predictions, against {args.models} live models): "
            f"{took:.1f} s wall; {made / took:,.0f} backtest predictions/s; "
            f"{args.backtest_days * 86400 / took:,.0f}x real time (target: >= 500x)"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
