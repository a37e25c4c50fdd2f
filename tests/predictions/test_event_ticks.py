"""Ticks as data arrives (docs/predict.md "Event ticks"): the real ingest path, the real local
gateway and real model code; PostgreSQL and SQLite."""

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings

from coordinator_site.contract import STARTER_CONTRACT
from feeds.dims import NormalizedRecord
from feeds.services import ingest_records
from predictions.choices import PredictionStatus
from predictions.gateway.base import SERVER_BUSY, CallStatus
from predictions.models import Input, Prediction
from predictions.services import run_predict_cycle
from predictions.ticks import TickTracker, event_ticks_enabled
from tests.factories import T0, make_config
from tests.predictions import tick_probe
from tests.predictions.helpers import make_gateway, wait_until, write_model

pytestmark = pytest.mark.django_db

TICK_DIMS = {"source": "synthetic", "subject": "BTC", "kind": "tick", "granularity": "1s"}
SLOT = T0 + timedelta(seconds=60)
NO_EVENT_TICKS = STARTER_CONTRACT.model_copy(update={"event_ticks": False})

RECORDER = """
from tests.predictions import tick_probe


class Recorder(ModelBaseClass):
    NAME = {name!r}
    TICK_SLEEP = {tick_sleep}
    PREDICT_SLEEP = {predict_sleep}
    TICK_RAISES = {tick_raises}

    def tick(self, data):
        tick_probe.enter(self.NAME, "tick", data)
        try:
            time.sleep(self.TICK_SLEEP)
            if self.TICK_RAISES:
                raise RuntimeError("tick boom")
            self.data = data
        finally:
            tick_probe.leave(self.NAME)

    def predict(self, subject, horizon, step):
        tick_probe.enter(self.NAME, "predict")
        try:
            time.sleep(self.PREDICT_SLEEP)
            return {{"p_up": 0.5}}
        finally:
            tick_probe.leave(self.NAME)
"""


def recorder(models_dir, name, *, tick_sleep=0.0, predict_sleep=0.0, tick_raises=False):
    body = RECORDER.format(name=name, tick_sleep=tick_sleep, predict_sleep=predict_sleep, tick_raises=tick_raises)
    return write_model(models_dir, name, body)


@pytest.fixture(autouse=True)
def _probe():
    tick_probe.reset()
    yield
    tick_probe.reset()


def ingest(*seconds_after_t0: float, price: float = 100.0) -> None:
    """Store tick records through the feed's ingest path (validation, upsert, notification)."""
    ingest_records(
        NormalizedRecord(**TICK_DIMS, ts_event=T0 + timedelta(seconds=s), values={"price": price + s})
        for s in seconds_after_t0
    )


def iso(seconds_after_t0: float) -> str:
    return (T0 + timedelta(seconds=seconds_after_t0)).isoformat()


def tick_config(**overrides):
    fields = {"scope_key": "BTC-tick-60s", "scope_template": dict(TICK_DIMS), "interval_seconds": 60}
    fields.update(overrides)
    return make_config(next_run_at=SLOT, horizon_seconds=300, **fields)


def test_records_are_ticked_as_they_arrive_and_the_slot_only_predicts(tmp_path):
    recorder(tmp_path, "rec")
    tick_config()
    gateway = make_gateway(tmp_path, timeout=2)
    ticks = TickTracker(gateway)
    try:
        ingest(1, 2, 3)
        assert ticks.tick_new_records(now=T0 + timedelta(seconds=4)) == {"event_ticks": 1}
        assert tick_probe.ticked("rec") == [iso(3)]
        # Nothing new on the tape: nothing sent.
        assert ticks.tick_new_records(now=T0 + timedelta(seconds=5)) == {}
        ingest(10)
        assert ticks.tick_new_records(now=T0 + timedelta(seconds=11)) == {"event_ticks": 1}
        assert tick_probe.ticked("rec") == [iso(3), iso(10)]

        report = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT + timedelta(seconds=1), ticks=ticks)
    finally:
        gateway.close()
    # At the slot the models already had this input: predict only.
    assert tick_probe.ticked("rec") == [iso(3), iso(10)]
    assert tick_probe.count("rec", "predict") == 1
    assert report.counts["pending"] == 1
    input_row = Input.objects.get(pk=report.input_id)
    assert [r["ts_event"] for r in input_row.raw_data["records"]][-1] == iso(10)
    assert input_row.ticks["mode"] == "event"
    assert input_row.ticks["first_ts"] == iso(1)
    assert input_row.ticks["last_ts"] == iso(10)
    assert input_row.ticks["count"] == 4
    assert input_row.ticks["ahead"] == 2  # two event ticks since the previous slot
    assert input_row.ticks["since_ts"] is None  # first slot of this config in this process


def test_a_record_that_arrives_after_the_last_event_tick_is_ticked_at_the_slot(tmp_path):
    recorder(tmp_path, "rec")
    tick_config()
    gateway = make_gateway(tmp_path, timeout=2)
    ticks = TickTracker(gateway)
    try:
        ingest(1, 2)
        ticks.tick_new_records(now=T0 + timedelta(seconds=3))
        ingest(59)  # no event pass before the slot
        report = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT, ticks=ticks)
        first = Input.objects.get(pk=report.input_id)
        assert first.ticks["mode"] == "slot"
        assert tick_probe.ticked("rec") == [iso(2), iso(59)]
        assert first.ticks["last_ts"] == iso(59)
        assert first.ticks["ahead"] == 1
        # The next slot: the records since are ticked ahead, and the Input says from where.
        ingest(70)
        ticks.tick_new_records(now=T0 + timedelta(seconds=71))
        second_report = run_predict_cycle(
            gateway=gateway, worker_id="w1", now=SLOT + timedelta(seconds=60), ticks=ticks
        )
    finally:
        gateway.close()
    second = Input.objects.get(pk=second_report.input_id)
    assert second.ticks["mode"] == "event"
    assert (second.ticks["since_ts"], second.ticks["last_ts"]) == (iso(59), iso(70))
    assert tick_probe.ticked("rec") == [iso(2), iso(59), iso(70)]


def test_a_model_that_joins_after_the_event_tick_is_ticked_at_the_slot(tmp_path):
    recorder(tmp_path, "early")
    tick_config()
    gateway = make_gateway(tmp_path, timeout=2)
    ticks = TickTracker(gateway)
    try:
        ingest(1, 2)
        ticks.tick_new_records(now=T0 + timedelta(seconds=3))
        recorder(tmp_path, "late")
        gateway.refresh(force=True)
        report = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT, ticks=ticks)
    finally:
        gateway.close()
    assert tick_probe.ticked("late") == [iso(2)]  # it would otherwise predict without data
    assert Input.objects.get(pk=report.input_id).ticks["mode"] == "slot"
    assert report.counts["pending"] == 2


def test_without_event_ticks_every_slot_ticks_the_whole_input_as_before(tmp_path):
    recorder(tmp_path, "rec")
    tick_config()
    gateway = make_gateway(tmp_path, timeout=2)
    try:
        ingest(1, 2, 3)
        report = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT)
        second = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT + timedelta(seconds=60))
    finally:
        gateway.close()
    # Same tape, two slots: the input is ticked in each cycle, right before predict.
    assert [name for _m, name, _ts in tick_probe.calls] == ["tick", "predict", "tick", "predict"]
    first = Input.objects.get(pk=report.input_id)
    assert first.ticks["mode"] == "slot"
    assert (first.ticks["first_ts"], first.ticks["last_ts"], first.ticks["count"]) == (iso(1), iso(3), 3)
    assert Input.objects.get(pk=second.input_id).ticks["mode"] == "slot"


class NamedGateway:
    def __init__(self, name):
        self.name = name


@pytest.mark.parametrize(
    ("setting", "gateway", "contract", "expected"),
    [
        ("auto", "local", None, True),
        ("auto", "remote", None, False),
        ("on", "remote", None, True),
        ("off", "local", None, False),
        ("on", "local", "tests.predictions.test_event_ticks.NO_EVENT_TICKS", False),
    ],
)
def test_event_ticks_follow_the_setting_the_gateway_and_the_contract(setting, gateway, contract, expected):
    overrides = {"EVENT_TICKS": setting}
    if contract:
        overrides["CRUNCH_CONTRACT"] = contract
    with override_settings(**overrides):
        assert event_ticks_enabled(NamedGateway(gateway)) is expected


def test_an_unknown_event_ticks_setting_fails_the_system_check():
    from django.core.management.base import SystemCheckError

    with override_settings(EVENT_TICKS="yes"), pytest.raises(SystemCheckError, match="EVENT_TICKS"):
        call_command("check")


def test_a_tick_that_raises_is_counted_and_does_not_break_the_cycle(tmp_path):
    recorder(tmp_path, "broken", tick_raises=True)
    recorder(tmp_path, "fine")
    tick_config()
    gateway = make_gateway(tmp_path, timeout=2)
    ticks = TickTracker(gateway)
    try:
        ingest(1, 2)
        counts = ticks.tick_new_records(now=T0 + timedelta(seconds=3))
        report = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT, ticks=ticks)
    finally:
        gateway.close()
    assert counts == {"event_ticks": 1, "event_tick_failed": 1}
    assert ticks.failures == {"broken": {"FAILED": 1}}
    assert tick_probe.ticked("fine") == [iso(2)]
    statuses = dict(Prediction.objects.filter(input_id=report.input_id).values_list("model__model_id", "status"))
    assert statuses == {"broken": PredictionStatus.PENDING, "fine": PredictionStatus.PENDING}


def test_a_model_is_never_ticked_while_its_predict_runs(tmp_path):
    recorder(tmp_path, "slow", predict_sleep=3)  # ample: the tick pass must start while it runs
    recorder(tmp_path, "quick")
    tick_config()
    gateway = make_gateway(tmp_path, timeout=5)
    ticks = TickTracker(gateway)
    try:
        ingest(1, 2)
        predicting = threading.Thread(target=gateway.call, args=("predict", ["BTC", 300, 60]))
        predicting.start()
        assert wait_until(lambda: tick_probe.count("slow", "predict") == 1, timeout=5)
        # Another thread ticks while "slow" is inside predict(): it is not called, it is busy.
        counts = ticks.tick_new_records(now=T0 + timedelta(seconds=3))
        predicting.join(timeout=10)
    finally:
        gateway.close()
    assert tick_probe.overlaps == []
    assert tick_probe.ticked("slow") == []
    assert tick_probe.ticked("quick") == [iso(2)]
    assert counts == {"event_ticks": 1, "event_tick_timeout": 1}
    assert ticks.failures["slow"] == {"TIMEOUT": 1}


def test_a_predict_never_starts_while_a_late_tick_runs(tmp_path):
    recorder(tmp_path, "slow_tick", tick_sleep=3)  # still ticking when the slot's predict comes
    tick_config()
    gateway = make_gateway(tmp_path, timeout=0.2)
    ticks = TickTracker(gateway)
    try:
        ingest(1, 2)
        ticks.tick_new_records(now=T0 + timedelta(seconds=3))  # the tick overruns its deadline
        report = run_predict_cycle(gateway=gateway, worker_id="w1", now=SLOT, ticks=ticks)
        assert wait_until(lambda: not any(m.busy.locked() for m in gateway.models.values()), timeout=10)
    finally:
        gateway.close()
    assert tick_probe.overlaps == []
    assert tick_probe.count("slow_tick", "predict") == 0
    prediction = Prediction.objects.get(input_id=report.input_id)
    assert (prediction.status, prediction.failure_detail) == (PredictionStatus.FAILED, SERVER_BUSY)


def test_an_event_tick_pass_ends_before_the_next_slot(tmp_path):
    from django.utils import timezone

    recorder(tmp_path, "sleepy", tick_sleep=8)
    now = timezone.now()
    make_config(
        scope_key="BTC-soon",
        scope_template=dict(TICK_DIMS),
        interval_seconds=60,
        horizon_seconds=60,
        next_run_at=now + timedelta(seconds=0.5),
    )
    ingest_records([NormalizedRecord(**TICK_DIMS, ts_event=now - timedelta(seconds=1), values={"price": 100.0})])
    gateway = make_gateway(tmp_path, timeout=20)
    ticks = TickTracker(gateway)
    try:
        started = time.monotonic()
        counts = ticks.tick_new_records(now=now)
        elapsed = time.monotonic() - started
    finally:
        gateway.close()
    # The call timeout is 20 s and the tick takes 8, but the slot is due in 0.5 s: the pass gave up.
    assert elapsed < 4.0, elapsed
    assert counts["event_tick_timeout"] == 1
    results = [r for r in [ticks.failures.get("sleepy")] if r]
    assert results == [{CallStatus.TIMEOUT.value: 1}]
