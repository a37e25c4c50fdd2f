"""Event ticks with a real `run_predict` process: records the feed stores reach the models'
`tick()` before the slot (PostgreSQL: woken by the tape notification, with polling set to a
minute; SQLite: the short poll), and at the slot the worker only calls `predict()`."""

import json
import time
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from feeds.dims import NormalizedRecord
from feeds.services import ingest_records
from predictions.models import Input
from tests.e2e.processes import start, stop, wait_for
from tests.factories import make_config
from tests.predictions.helpers import BASE, write_model

pytestmark = pytest.mark.slow

TICK_DIMS = {"source": "synthetic", "subject": "BTC", "kind": "tick", "granularity": "1s"}

FILE_RECORDER = """
import json


class FileRecorder(ModelBaseClass):
    def _log(self, *entry):
        with open({log!r}, "a") as f:
            f.write(json.dumps([*entry, time.time()]) + "\\n")

    def tick(self, data):
        self._log("tick", data["records"][-1]["ts_event"])

    def predict(self, subject, horizon, step):
        self._log("predict", None)
        return {{"p_up": 0.5}}
"""


def calls(log_path):
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def ingest_at(ts):
    ingest_records([NormalizedRecord(**TICK_DIMS, ts_event=ts, values={"price": 100.0})])


def test_run_predict_ticks_the_models_as_records_are_stored(tmp_path, manage_py, worker_env):
    log_path = tmp_path / "calls.jsonl"
    write_model(tmp_path / "models", "recorder", FILE_RECORDER.format(log=str(log_path)))
    now = timezone.now()
    ingest_at(now - timedelta(seconds=2))
    slot = now.replace(microsecond=0) + timedelta(seconds=20)
    make_config(
        scope_key="BTC-ticks",
        scope_template=dict(TICK_DIMS),
        interval_seconds=3600,
        horizon_seconds=60,
        next_run_at=slot,
    )
    postgres = connection.vendor == "postgresql"
    env = {
        **worker_env,
        "MODELS_DIR": str(tmp_path / "models"),
        "MODEL_BASE_CLASSNAME": BASE,
        "WAKEUP_FALLBACK_SECONDS": "60",
    }
    # PostgreSQL: with --sleep and the fallback at a minute, only the notification can be quick.
    process, output = start([*manage_py, "run_predict", "--sleep", "60" if postgres else "0.2"], env)
    try:
        assert wait_for(lambda: output.contains("event ticks on"), timeout=60), output.text
        assert wait_for(lambda: [c for c in calls(log_path) if c[0] == "tick"], timeout=30), output.text
        time.sleep(1)  # idle again, waiting
        newest = timezone.now() - timedelta(milliseconds=100)
        ingest_at(newest)
        stored = time.time()
        ticked = wait_for(
            lambda: [c for c in calls(log_path) if c[0] == "tick" and c[1] == newest.isoformat()], timeout=30
        )
        assert ticked, (calls(log_path), output.text)
        assert ticked[0][2] - stored < 5.0  # a poll at --sleep 60 / fallback 60 could not be this quick
        assert wait_for(lambda: close_old_connections() or Input.objects.exists(), timeout=60), output.text
    finally:
        stop(process)
    seen = calls(log_path)
    # Before the slot: one tick per change of the input; at the slot: predict only.
    assert [c[0] for c in seen] == ["tick", "tick", "predict"], seen
    assert seen[1][2] < slot.timestamp() <= seen[2][2] + 0.5
    input_row = Input.objects.get()
    assert input_row.ticks["mode"] == "event"
    assert input_row.ticks["last_ts"] == newest.isoformat()
    assert input_row.ticks["ahead"] == 2
