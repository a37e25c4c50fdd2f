"""The operator's admin: the checkpoint page, and confirm/advance through the admin's HTTP views."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint, CheckpointTransition
from checkpoints.selectors import aligned_period
from checkpoints.services import create_due_checkpoint
from tests.checkpoints.helpers import add_snapshot
from tests.factories import T0, make_checkpoint, make_model

pytestmark = pytest.mark.django_db
OTHER_SIG = "3x3vw8k11QcDV6sq39ECi9GWNnQBqjAc2tpz5KjsJGPiNZBMMXtoJtxc4oF3dmZNS21v6Cne6EzEnUTXk8eM2UkR"
SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("operator", "op@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_checkpoint", "change_checkpoint", "view_checkpointtransition"])
    )
    client.force_login(user)
    return client


@pytest.fixture
def checkpoint():
    models = [make_model(cruncher_index=40), make_model(cruncher_index=None)]
    add_snapshot(models[0], T0, 0.2, 5)
    add_snapshot(models[1], T0, 0.3, 5)
    built, _ = create_due_checkpoint(now=aligned_period(T0).end + timedelta(seconds=1))
    return built


def change_url(checkpoint):
    return reverse("admin:checkpoints_checkpoint_change", args=[checkpoint.pk])


def confirm_url(checkpoint):
    return reverse("admin:checkpoints_checkpoint_confirm", args=[checkpoint.pk])


def advance_url(checkpoint):
    return reverse("admin:checkpoints_checkpoint_advance", args=[checkpoint.pk])


def test_change_page_shows_period_ranking_emission_percent_root_and_history(staff_client, checkpoint):
    CheckpointTransition.objects.create(
        checkpoint=checkpoint, from_status="PENDING", to_status="SUBMITTED", actor="zed"
    )
    page = staff_client.get(change_url(checkpoint)).content.decode()
    assert checkpoint.period_start.isoformat() in page
    assert checkpoint.period_end.isoformat() in page
    for item in checkpoint.ranking:
        assert item["model_id"] in page
    assert "NO_CRUNCHER_INDEX" in page
    assert "UNSET" in page
    assert "100.0000000 %" in page  # the indexed model is paid everything
    assert checkpoint.merkle_root in page
    assert "zed" in page  # transition history
    assert "Confirm tx hash" in page
    assert "Advance status" not in page  # PENDING moves on only by confirming


def test_confirm_form_confirms_through_the_service(staff_client, checkpoint):
    form = staff_client.get(confirm_url(checkpoint))
    assert form.status_code == 200
    assert 'name="tx_hash"' in form.content.decode()
    response = staff_client.post(confirm_url(checkpoint), {"tx_hash": SIG})
    assert response.status_code == 302
    assert response["Location"] == change_url(checkpoint)
    checkpoint.refresh_from_db()
    assert (checkpoint.status, checkpoint.tx_hash) == (CheckpointStatus.SUBMITTED, SIG)
    transition = CheckpointTransition.objects.get(checkpoint=checkpoint)
    assert (transition.actor, transition.tx_hash, transition.to_status) == ("operator", SIG, "SUBMITTED")
    page = staff_client.get(change_url(checkpoint)).content.decode()
    assert "Advance status to CLAIMABLE" in page


@pytest.mark.parametrize("bad", ["not a hash!", "0" * 200])
def test_confirm_form_shows_the_service_error_for_a_malformed_hash(staff_client, checkpoint, bad):
    response = staff_client.post(confirm_url(checkpoint), {"tx_hash": bad})
    assert response.status_code == 200
    assert "Refused: tx_hash" in response.content.decode()
    checkpoint.refresh_from_db()
    assert checkpoint.status == CheckpointStatus.PENDING
    assert not CheckpointTransition.objects.exists()


def test_confirm_form_shows_the_refusal_of_another_hash(staff_client, checkpoint):
    staff_client.post(confirm_url(checkpoint), {"tx_hash": OTHER_SIG})
    response = staff_client.post(confirm_url(checkpoint), {"tx_hash": SIG})
    assert response.status_code == 200
    assert "already confirmed with another tx_hash" in response.content.decode()
    checkpoint.refresh_from_db()
    assert checkpoint.tx_hash == OTHER_SIG


def test_advance_button_moves_one_step_and_shows_refusals(staff_client, checkpoint):
    response = staff_client.post(advance_url(checkpoint), {"to": "CLAIMABLE"}, follow=True)
    assert "Refused:" in response.content.decode()
    assert Checkpoint.objects.get(pk=checkpoint.pk).status == CheckpointStatus.PENDING

    staff_client.post(confirm_url(checkpoint), {"tx_hash": OTHER_SIG})
    response = staff_client.post(advance_url(checkpoint), {"to": "PAID"}, follow=True)
    assert "Refused:" in response.content.decode()  # no skipping
    assert Checkpoint.objects.get(pk=checkpoint.pk).status == CheckpointStatus.SUBMITTED

    response = staff_client.post(advance_url(checkpoint), {"to": "CLAIMABLE"}, follow=True)
    assert f"Checkpoint {checkpoint.pk} is CLAIMABLE" in response.content.decode()
    staff_client.post(advance_url(checkpoint), {"to": "PAID"})
    assert Checkpoint.objects.get(pk=checkpoint.pk).status == CheckpointStatus.PAID
    assert list(CheckpointTransition.objects.filter(checkpoint=checkpoint).values_list("to_status", "actor")) == [
        ("SUBMITTED", "operator"),
        ("CLAIMABLE", "operator"),
        ("PAID", "operator"),
    ]
    assert staff_client.get(advance_url(checkpoint)).status_code == 405


def test_changelist_action_advances_selected_and_reports_refusals(staff_client):
    submitted = make_checkpoint(status="SUBMITTED", tx_hash=OTHER_SIG)
    pending = make_checkpoint(period_start=T0 + timedelta(days=7))
    response = staff_client.post(
        reverse("admin:checkpoints_checkpoint_changelist"),
        {"action": "advance_selected", "_selected_action": [submitted.pk, pending.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert f"Checkpoint {submitted.pk} is CLAIMABLE" in page
    assert f"Refused: checkpoint {pending.pk} is PENDING" in page
    assert Checkpoint.objects.get(pk=submitted.pk).status == "CLAIMABLE"
    assert Checkpoint.objects.get(pk=pending.pk).status == "PENDING"


def test_anonymous_users_cannot_confirm(client, checkpoint):
    response = client.post(confirm_url(checkpoint), {"tx_hash": OTHER_SIG})
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert Checkpoint.objects.get(pk=checkpoint.pk).status == CheckpointStatus.PENDING


def test_staff_without_change_permission_cannot_confirm(client, checkpoint):
    user = get_user_model().objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    client.force_login(user)
    assert client.post(confirm_url(checkpoint), {"tx_hash": OTHER_SIG}).status_code == 403
    assert client.post(advance_url(checkpoint), {"to": "CLAIMABLE"}).status_code == 403
    assert Checkpoint.objects.get(pk=checkpoint.pk).status == CheckpointStatus.PENDING
