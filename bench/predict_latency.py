"""Predict-cycle latency with N trivial local models (issue 4).

Measures, per cycle, the time from "new tape record committed" to "all predictions of the cycle
committed" (run_predict_cycle with the local gateway), with a breakdown (input build, model
calls, validation, persistence), and in the same run the time of a plain
`Prediction.objects.bulk_create` of the same number of rows in its own transaction. It also
prints the CPU time per cycle and the load average: on a shared machine the wall-clock figures
include time spent waiting for other processes, so compare them with the plain insert of the
same run.

Usage (Postgres, the target database):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coord_predict \
        /work/venv/bin/python bench/predict_latency.py --models 10 100 1000 --cycles 200

`--event-ticks`: each record is first sent to the models' `tick()` by the event-tick pass
(untimed: it runs while the worker waits for the slot, docs/predict.md "Event ticks"), so the
timed cycle calls only `predict()`; the `tick` column is the cycle's own tick (0 when skipped).
Run with and without it on the same machine to compare.

It migrates the database, creates its own config/models/tape rows (prefixed `bench-`) and
deletes them afterwards. The first WARMUP cycles of each size (identity upserts, thread start)
are excluded from the statistics.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coordinator_site.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from feeds.models import FeedRecord  # noqa: E402
from predictions.choices import PredictionStatus  # noqa: E402
from predictions.gateway.local import LocalModelGateway  # noqa: E402
from predictions.models import Input, ModelDeployment, ParticipantModel, Prediction, PredictionConfig  # noqa: E402
from predictions.services import run_predict_cycle  # noqa: E402
from predictions.ticks import TickTracker  # noqa: E402

WARMUP = 3
DIMS = {"source": "bench", "subject": "BENCH", "kind": "tick", "granularity": "1s"}
MODEL_CODE = """from cruncher import ModelBaseClass


class Trivial(ModelBaseClass):
    def tick(self, data):
        self.n = len(data["records"])

    def predict(self, subject, horizon_seconds, step_seconds):
        return {"p_up": 0.5}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def cleanup() -> None:
    Prediction.objects.filter(scope_key__startswith="bench-").delete()
    Input.objects.filter(config__scope_key__startswith="bench-").delete()
    PredictionConfig.objects.filter(scope_key__startswith="bench-").delete()
    ModelDeployment.objects.filter(model__model_id__startswith="bench-").delete()
    ParticipantModel.objects.filter(model_id__startswith="bench-").delete()
    FeedRecord.objects.filter(source=DIMS["source"]).delete()


def run_size(n_models: int, cycles: int, *, event_ticks: bool = False) -> dict:
    cleanup()
    base = datetime(2030, 1, 1, tzinfo=UTC)
    window = settings.FEED_WINDOW_SIZE
    FeedRecord.objects.bulk_create(
        FeedRecord(**DIMS, ts_event=base - timedelta(seconds=window - i), values={"price": 100.0 + i})
        for i in range(window)
    )
    config = PredictionConfig.objects.create(
        scope_key=f"bench-{n_models}",
        scope_template=dict(DIMS),
        interval_seconds=1,
        horizon_seconds=60,
        next_run_at=base + timedelta(seconds=1),
    )
    shadow = PredictionConfig.objects.create(
        scope_key=f"bench-{n_models}-plain",
        scope_template=dict(DIMS),
        interval_seconds=1,
        horizon_seconds=60,
        active=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_models):
            folder = Path(tmp) / f"bench-{n_models}-{i:04d}"
            folder.mkdir()
            (folder / "main.py").write_text(MODEL_CODE)
        gateway = LocalModelGateway(
            models_dir=tmp, base_classname="cruncher.ModelBaseClass", timeout=5.0, rescan_seconds=1e9
        )
        gateway.models_dir = Path(tmp)
        # The base class lives in examples/ (the embedded default's layout).
        from predictions.gateway.local import resolve_base_class

        gateway._base_class = resolve_base_class("cruncher.ModelBaseClass", [ROOT / "examples"])
        gateway.start()
        assert len(gateway.connected_models()) == n_models, gateway.load_errors

        latency, cpu, plain, parts = (
            [],
            [],
            [],
            {"claim": [], "input_build": [], "tick": [], "model_calls": [], "validation": [], "persistence": []},
        )
        model_pks = None
        ticks = TickTracker(gateway) if event_ticks else None
        for k in range(cycles + WARMUP):
            now = base + timedelta(seconds=k + 1)
            arrived = now - timedelta(milliseconds=500)  # half a slot before the slot
            FeedRecord.objects.create(**DIMS, ts_event=arrived, values={"price": 100.0 + k})  # autocommit
            if ticks is not None:
                assert ticks.tick_new_records(now=arrived).get("event_ticks") == 1
            started, cpu_started = time.perf_counter(), time.process_time()
            report = run_predict_cycle(gateway=gateway, worker_id="bench", now=now, ticks=ticks)
            elapsed = (time.perf_counter() - started) * 1000
            cpu_ms = (time.process_time() - cpu_started) * 1000  # this process, model threads included
            if report is None or not report.input_id:
                raise SystemExit(f"cycle {k} wrote nothing: {report}")
            if model_pks is None:
                model_pks = list(Prediction.objects.filter(input_id=report.input_id).values_list("model_id", flat=True))
            # The same rows, written plainly: one Input-less bulk insert in its own transaction.
            shadow_input = Input.objects.create(
                config=shadow, scheduled_for=now, resolvable_at=now + timedelta(seconds=60)
            )
            rows = [
                Prediction(
                    input=shadow_input,
                    model_id=pk,
                    config=shadow,
                    scope_key=shadow.scope_key,
                    deployment_id="d",
                    status=PredictionStatus.PENDING,
                    output={"p_up": 0.5},
                    exec_time_us=10,
                    performed_at=now,
                    resolvable_at=now + timedelta(seconds=60),
                )
                for pk in model_pks
            ]
            t0 = time.perf_counter()
            with transaction.atomic():
                Prediction.objects.bulk_create(rows)
            plain_ms = (time.perf_counter() - t0) * 1000
            if k < WARMUP:
                continue
            latency.append(elapsed)
            cpu.append(cpu_ms)
            plain.append(plain_ms)
            for key in parts:
                parts[key].append(report.timings_ms[key])
        gateway.close()
    assert Prediction.objects.filter(config=config).count() == (cycles + WARMUP) * n_models
    cleanup()
    return {"latency": latency, "cpu": cpu, "plain": plain, "parts": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--event-ticks", action="store_true", help="tick each record ahead of the slot")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    import logging

    logging.getLogger("predictions").setLevel(logging.WARNING)
    # Only the bench config may be due while measuring; other configs are paused and restored.
    paused = list(
        PredictionConfig.objects.filter(active=True)
        .exclude(scope_key__startswith="bench-")
        .values_list("pk", flat=True)
    )
    PredictionConfig.objects.filter(pk__in=paused).update(active=False)
    try:
        report(options)
    finally:
        PredictionConfig.objects.filter(pk__in=paused).update(active=True)


def report(options) -> None:
    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']}; window {settings.FEED_WINDOW_SIZE} records"
    )
    print(f"cycles per size: {options.cycles} (+{WARMUP} warm-up, excluded); load average {_load()}")
    print(f"event ticks: {'on (records ticked ahead, untimed)' if options.event_ticks else 'off (tick in the cycle)'}")
    header = f"{'models':>6} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>7} | {'claim':>6} {'input':>6} {'tick':>6} {'calls':>6} {'valid':>6} {'persist':>7} | {'plain p50':>9} {'plain p99':>9} {'persist/plain':>13}"
    print(header)
    for n in options.models:
        result = run_size(n, options.cycles, event_ticks=options.event_ticks)
        med = {k: statistics.median(v) for k, v in result["parts"].items()}
        plain50 = statistics.median(result["plain"])
        print(
            f"{n:>6} {pct(result['latency'], 50):>8.2f} {pct(result['latency'], 99):>8.2f} {pct(result['cpu'], 50):>7.2f} | "
            f"{med['claim']:>6.2f} {med['input_build']:>6.2f} {med['tick']:>6.2f} {med['model_calls']:>6.2f} {med['validation']:>6.2f} {med['persistence']:>7.2f} | "
            f"{plain50:>9.2f} {pct(result['plain'], 99):>9.2f} {med['persistence'] / plain50:>13.2f}"
        )
    print(
        "breakdown columns are medians in ms; calls = the cycle's tick + predict; persistence = ACTIVE models read + identities (when changed) + Input"
        " + every Prediction + schedule, atomically (one statement on Postgres)"
    )
    print(
        "cpu p50: CPU time of this process per cycle (model threads included); the rest of p50 is waiting"
        f" (database, other processes on the machine); load average {_load()}"
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


if __name__ == "__main__":
    main()
