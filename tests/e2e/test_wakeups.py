"""Wake-ups on PostgreSQL with real worker processes: a slot is served on time, not at the next
poll; a notification wakes the score worker at once; a lost one costs the fallback bound only."""

import time
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from coordinator_site import wakeup
from predictions.choices import InputStatus
from predictions.models import Input
from tests.e2e.processes import start, stop, wait_for
from tests.factories import make_config, make_model
from tests.predictions.helpers import BASE, DIMS, fill_tape, write_model
from tests.scoring.helpers import make_round, make_scoring_input, make_tape

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"),
]


def fresh(query):
    close_old_connections()
    return query()


def test_run_predict_serves_each_slot_at_its_time_not_at_the_next_poll(tmp_path, manage_py, worker_env):
    write_model(tmp_path / "models", "good")
    now = timezone.now()
    fill_tape(end=now + timedelta(minutes=5))
    first = now.replace(microsecond=0) + timedelta(seconds=3)
    make_config(scope_key="BTC-2s", scope_template=dict(DIMS), interval_seconds=2, next_run_at=first)
    env = {**worker_env, "MODELS_DIR": str(tmp_path / "models"), "MODEL_BASE_CLASSNAME": BASE}
    # --sleep 5: polling would serve a 2 s schedule up to seconds late
    process, output = start([*manage_py, "run_predict", "--sleep", "5"], env)
    try:
        assert wait_for(lambda: fresh(lambda: Input.objects.count() >= 5), timeout=90), output.text
    finally:
        stop(process)
    late = [
        (received - slot).total_seconds()
        for slot, received in Input.objects.order_by("scheduled_for").values_list("scheduled_for", "received_at")
    ]
    assert all(0 <= s < 1.5 for s in late), late


def scorable_input():
    now = timezone.now()
    start_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=12)
    make_tape(start_minute, [100.0 + i for i in range(12)])
    input_ = make_scoring_input(scheduled_for=start_minute + timedelta(minutes=2))
    make_round(input_, {make_model(): 0.7})
    return input_


def resolved(input_):
    return fresh(lambda: Input.objects.get(pk=input_.pk).status == InputStatus.RESOLVED)


def idle_score_worker(manage_py, env):
    process, output = start([*manage_py, "run_score", "--sleep", "0.2"], env)
    assert wait_for(lambda: output.contains("started"), timeout=60), output.text
    time.sleep(2)  # past its first (empty) unit: waiting now
    return process, output


def test_a_notification_wakes_the_idle_score_worker_at_once(manage_py, worker_env):
    env = {**worker_env, "WAKEUP_FALLBACK_SECONDS": "120"}
    process, output = idle_score_worker(manage_py, env)
    try:
        input_ = scorable_input()  # written behind the worker's back: no notification yet
        time.sleep(3)
        assert not resolved(input_), "woke without a notification (the fallback is 120 s)"
        sent = time.monotonic()
        wakeup.notify(wakeup.INPUTS)
        assert wait_for(lambda: resolved(input_), timeout=60), output.text
        assert time.monotonic() - sent < 30
    finally:
        stop(process)


def test_a_lost_notification_only_delays_work_by_the_fallback_bound(manage_py, worker_env):
    env = {**worker_env, "WAKEUP_FALLBACK_SECONDS": "3"}
    process, output = idle_score_worker(manage_py, env)
    try:
        written = time.monotonic()
        input_ = scorable_input()  # never notified
        assert wait_for(lambda: resolved(input_), timeout=60), output.text
        assert time.monotonic() - written < 3 + 25  # the bound, with ample headroom for a loaded CI
    finally:
        stop(process)
