"""The predict cycle's write outside any test transaction, as the worker runs it (autocommit).

On Postgres a cycle whose model identities need no write is ONE statement without
BEGIN/COMMIT (claim check, Input, every Prediction); these tests check that this path keeps
the guarantees of the transactional one: all or nothing, a lost claim or a duplicate slot
writes nothing, every outcome is stored as the ORM would store it.
"""

import shutil
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import predictions.services as services
from predictions.choices import FailureReason, PredictionStatus
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from predictions.services import ClaimLost, run_predict_cycle
from tests.factories import T0, make_config, make_input
from tests.predictions.helpers import DIMS, fill_tape, make_gateway, write_model

pytestmark = pytest.mark.django_db(transaction=True)

ODD = 'it\'s \\ a {"tricky"}, ünïcode ✓ detail'
MODELS = {
    "good": "class Good(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': 0.25}\n",
    "odd_error": f"class Odd(ModelBaseClass):\n    def predict(self, *a):\n        raise ValueError({ODD!r})\n",
    "out_of_range": "class OutOfRange(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': 1.5}\n",
}


def setup_models(tmp_path):
    for name, body in MODELS.items():
        write_model(tmp_path, name, body)
    fill_tape(end=T0 + timedelta(minutes=3))
    return make_config(
        scope_key="BTC-1m", scope_template=dict(DIMS), interval_seconds=60, horizon_seconds=300, next_run_at=T0
    )


def by_model(input_id):
    return {p.model.model_id: p for p in Prediction.objects.filter(input_id=input_id).select_related("model")}


def test_every_outcome_is_stored_by_the_first_and_the_following_cycles(tmp_path):
    config = setup_models(tmp_path)
    gateway = make_gateway(tmp_path)
    first = run_predict_cycle(gateway=gateway, worker_id="w1", now=T0 + timedelta(seconds=5))
    # The second cycle needs no identity write: on Postgres it is the single-statement path.
    shutil.rmtree(tmp_path / "odd_error")
    gateway.refresh()
    with CaptureQueriesContext(connection) as queries:
        second = run_predict_cycle(gateway=gateway, worker_id="w1", now=T0 + timedelta(seconds=65))
    if connection.vendor == "postgresql":
        # claim, tape window, ACTIVE models, the write: four round trips, no BEGIN/COMMIT.
        assert len(queries.captured_queries) == 4, [q["sql"][:60] for q in queries.captured_queries]
    for report in (first, second):
        row = Input.objects.get(pk=report.input_id)
        assert row.scope["scope_key"] == "BTC-1m"
        assert row.raw_data["records"]
        assert row.as_of is not None
        got = by_model(report.input_id)
        assert (got["good"].status, got["good"].output, got["good"].deployment_id) == (
            PredictionStatus.PENDING,
            {"p_up": 0.25},
            gateway.models["good"].identity.deployment_id,
        )
        assert isinstance(got["good"].exec_time_us, int)
        assert (got["out_of_range"].failure_reason, got["out_of_range"].output) == (
            FailureReason.INVALID_OUTPUT,
            {"p_up": 1.5},
        )
        assert all(p.performed_at == report.scheduled_for + timedelta(seconds=5) for p in got.values())
        assert all(p.resolvable_at == row.resolvable_at and p.config_id == config.pk for p in got.values())
        assert all(p.scope_key == "BTC-1m" for p in got.values())
    assert by_model(first.input_id)["odd_error"].failure_detail == f"ValueError: {ODD}"
    absent = by_model(second.input_id)["odd_error"]
    assert (absent.status, absent.failure_reason, absent.failure_detail) == (PredictionStatus.ABSENT, "", "")
    # A failed or absent prediction has no output at all (SQL NULL, not JSON null).
    assert Prediction.objects.filter(output__isnull=True).count() == 2
    assert second.counts == {"pending": 1, "invalid_output": 1, "absent": 1, "predictions": 3}
    config.refresh_from_db()
    assert (config.next_run_at, config.claimed_by, config.lease_until) == (T0 + timedelta(seconds=120), "", None)


@pytest.mark.parametrize("identities_known", [False, True])
def test_a_claim_lost_before_the_write_writes_nothing(tmp_path, monkeypatch, identities_known):
    config = setup_models(tmp_path)
    gateway = make_gateway(tmp_path)
    now = T0 + timedelta(seconds=5)
    if identities_known:
        run_predict_cycle(gateway=gateway, worker_id="w1", now=now)
        now += timedelta(seconds=60)
    before = (Input.objects.count(), Prediction.objects.count(), ParticipantModel.objects.count())
    known_models = services.known_models

    def steal_the_claim(**kwargs):
        PredictionConfig.objects.filter(pk=config.pk).update(claimed_by="w2")
        return known_models(**kwargs)

    monkeypatch.setattr(services, "known_models", steal_the_claim)
    with pytest.raises(ClaimLost):
        run_predict_cycle(gateway=gateway, worker_id="w1", now=now)
    assert (Input.objects.count(), Prediction.objects.count(), ParticipantModel.objects.count()) == before
    config.refresh_from_db()
    assert config.claimed_by == "w2"


def test_a_slot_already_written_writes_nothing_and_releases_the_claim(tmp_path):
    config = setup_models(tmp_path)
    gateway = make_gateway(tmp_path)
    run_predict_cycle(gateway=gateway, worker_id="w1", now=T0 + timedelta(seconds=5))
    existing = make_input(config=config, scheduled_for=T0 + timedelta(seconds=60))
    report = run_predict_cycle(gateway=gateway, worker_id="w1", now=T0 + timedelta(seconds=65))
    assert report.skipped == "slot already served"
    assert not Prediction.objects.filter(input=existing).exists()
    config.refresh_from_db()
    assert (config.claimed_by, config.lease_until, config.next_run_at) == ("", None, T0 + timedelta(seconds=60))
