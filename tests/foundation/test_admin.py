"""Every admin changelist and change page renders for a staff user."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from checkpoints.models import CheckpointLeaf, CheckpointTransition
from feeds.models import BackfillJob, TapeRecovery
from predictions.models import ModelDeployment
from reports.models import ApiKey
from scoring.models import Leaderboard
from tests.factories import (
    T0,
    make_checkpoint,
    make_feed_record,
    make_heartbeat,
    make_ingestion_state,
    make_score,
    make_snapshot,
)

pytestmark = pytest.mark.django_db
OUR_APPS = {"coordinator_site", "feeds", "predictions", "scoring", "checkpoints", "reports"}


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def one_of_everything():
    make_feed_record()
    make_ingestion_state()
    BackfillJob.objects.create(
        source="synthetic", subject="BTC", kind="candle", granularity="1m", start=T0, end=T0.replace(hour=1)
    )
    TapeRecovery.objects.create(
        source="binance", subject="BTC", kind="candle", granularity="1m", fetches=1, last_fetch_at=T0
    )
    score = make_score()
    ModelDeployment.objects.create(model=score.model, deployment_id="d1")
    snapshot = make_snapshot(model=score.model)
    Leaderboard.objects.create(entries=[{"model_id": score.model.model_id, "rank": 1}])
    checkpoint = make_checkpoint()
    CheckpointLeaf.objects.create(checkpoint=checkpoint, snapshot=snapshot, position=0, content={}, leaf_hash="00")
    CheckpointTransition.objects.create(checkpoint=checkpoint, from_status="PENDING", to_status="SUBMITTED", actor="t")
    ApiKey.objects.create(name="k", prefix="abcd1234", hashed_secret="x")
    make_heartbeat()


def test_every_changelist_and_change_page_renders(staff_client, one_of_everything):
    ours = [m for m in admin.site._registry if m._meta.app_label in OUR_APPS]
    assert len(ours) >= 15
    for model in ours:
        info = (model._meta.app_label, model._meta.model_name)
        response = staff_client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, f"{info} changelist: {response.status_code}"
        obj = model._default_manager.first()
        assert obj is not None, f"no {info} row to open"
        response = staff_client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        assert response.status_code == 200, f"{info} change page: {response.status_code}"


def test_feed_records_and_scores_are_read_only_in_the_admin(staff_client, one_of_everything):
    from feeds.models import FeedRecord
    from scoring.models import Score

    for model in (FeedRecord, Score):
        model_admin = admin.site._registry[model]
        request = staff_client.get("/admin/").wsgi_request
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
