import pytest

from checkpoints.models import Checkpoint
from coordinator_site.transitions import InvalidTransition, transition
from predictions.models import Prediction
from tests.factories import make_checkpoint, make_prediction

pytestmark = pytest.mark.django_db


def test_checkpoint_pending_to_paid_is_refused_and_changes_nothing():
    checkpoint = make_checkpoint()
    before = Checkpoint.objects.values().get(pk=checkpoint.pk)
    with pytest.raises(InvalidTransition) as caught:
        transition(Checkpoint, pk=checkpoint.pk, to="PAID")
    assert caught.value.current == "PENDING"
    assert Checkpoint.objects.values().get(pk=checkpoint.pk) == before


def test_prediction_scored_to_pending_is_refused():
    prediction = make_prediction(status="SCORED")
    with pytest.raises(InvalidTransition):
        transition(Prediction, pk=prediction.pk, to="PENDING")
    prediction.refresh_from_db()
    assert prediction.status == "SCORED"


def test_a_legal_transition_changes_exactly_one_row_and_writes_its_fields():
    checkpoint = make_checkpoint()
    other = make_checkpoint(period_start=checkpoint.period_end)
    transition(Checkpoint, pk=checkpoint.pk, to="SUBMITTED", tx_hash="abc123")
    checkpoint.refresh_from_db()
    other.refresh_from_db()
    assert (checkpoint.status, checkpoint.tx_hash) == ("SUBMITTED", "abc123")
    assert other.status == "PENDING"


def test_a_transition_from_a_stale_expected_state_is_refused():
    checkpoint = make_checkpoint()
    transition(Checkpoint, pk=checkpoint.pk, to="SUBMITTED", tx_hash="abc")
    with pytest.raises(InvalidTransition):
        transition(Checkpoint, pk=checkpoint.pk, to="SUBMITTED", tx_hash="abc")
    with pytest.raises(InvalidTransition):
        transition(Checkpoint, pk=checkpoint.pk, to="CLAIMABLE", expected="PENDING")


def test_an_unknown_row_is_does_not_exist():
    with pytest.raises(Checkpoint.DoesNotExist):
        transition(Checkpoint, pk=999999, to="SUBMITTED", tx_hash="abc")
