"""Bad input: a 4xx with a clear message, never a 500, and nothing changed."""

import json

import pytest
from rest_framework.test import APIClient

from checkpoints.models import Checkpoint
from reports.services import api_key_create
from tests.factories import make_checkpoint
from tests.reports.helpers import EMISSION

pytestmark = pytest.mark.django_db

SIG_A = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"
SIG_B = "3x3vw8k11QcDV6sq39ECi9GWNnQBqjAc2tpz5KjsJGPiNZBMMXtoJtxc4oF3dmZNS21v6Cne6EzEnUTXk8eM2UkR"


@pytest.fixture
def admin():
    _, raw = api_key_create(name="ops", scope="admin")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def checkpoint():
    return make_checkpoint(emission=EMISSION)


def assert_unchanged(checkpoint):
    fresh = Checkpoint.objects.get(pk=checkpoint.pk)
    assert (fresh.status, fresh.tx_hash, fresh.submitted_at) == ("PENDING", "", None)
    assert not fresh.transitions.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tx_hash"),
        ({"tx_hash": ""}, "tx_hash"),
        ({"tx_hash": "a" * 129}, "tx_hash"),
        ({"tx_hash": None}, "tx_hash"),
        ({"tx_hash": ["a"]}, "tx_hash"),
    ],
)
def test_confirm_with_a_bad_tx_hash_is_400(admin, checkpoint, body, field):
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert_unchanged(checkpoint)


def test_confirm_with_a_malformed_tx_hash_is_400(admin, checkpoint):
    pytest.importorskip("checkpoints.services")
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", {"tx_hash": "not a hash!"}, format="json")
    assert response.status_code == 400
    assert "tx_hash" in response.json()
    assert_unchanged(checkpoint)


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_non_json_body_is_400(admin, checkpoint, method):
    action = "confirm" if method == "post" else "status"
    response = getattr(admin, method)(
        f"/reports/checkpoints/{checkpoint.pk}/{action}", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert_unchanged(checkpoint)


def test_an_unknown_status_value_is_400(admin, checkpoint):
    response = admin.patch(f"/reports/checkpoints/{checkpoint.pk}/status", {"status": "DONE"}, format="json")
    assert response.status_code == 400
    assert "status" in response.json()
    assert_unchanged(checkpoint)


def test_a_skipped_transition_is_409(admin, checkpoint):
    pytest.importorskip("checkpoints.services")
    response = admin.patch(f"/reports/checkpoints/{checkpoint.pk}/status", {"status": "PAID"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"]
    assert_unchanged(checkpoint)


def test_confirm_twice_with_the_same_hash_is_200_and_another_hash_409(admin, checkpoint):
    pytest.importorskip("checkpoints.services")
    url = f"/reports/checkpoints/{checkpoint.pk}/confirm"
    assert admin.post(url, {"tx_hash": SIG_A}, format="json").status_code == 200
    again = admin.post(url, {"tx_hash": SIG_A}, format="json")
    assert again.status_code == 200
    assert again.json()["tx_hash"] == SIG_A
    assert admin.post(url, {"tx_hash": SIG_B}, format="json").status_code == 409
    fresh = Checkpoint.objects.get(pk=checkpoint.pk)
    assert (fresh.status, fresh.tx_hash, fresh.transitions.count()) == ("SUBMITTED", SIG_A, 1)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/reports/checkpoints/999999"),
        ("get", "/reports/checkpoints/999999/emission"),
        ("get", "/reports/checkpoints/999999/emission/cli-format"),
        ("get", "/reports/checkpoints/999999/prizes"),
        ("post", "/reports/checkpoints/999999/confirm"),
        ("patch", "/reports/checkpoints/999999/status"),
        ("get", "/reports/checkpoints/abc"),
        ("get", "/reports/checkpoints/99999999999999999999"),
        ("post", "/reports/checkpoints/99999999999999999999/confirm"),
        ("get", "/reports/checkpoints/latest"),
        ("get", "/reports/emissions/latest"),
    ],
)
def test_unknown_ids_are_404(admin, method, path):
    response = getattr(admin, method)(path, {"tx_hash": "ab" * 32, "status": "SUBMITTED"}, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/reports/predictions", {"start": "yesterday"}, "start"),
        ("/reports/predictions", {"end": "2026-13-45T00:00:00Z"}, "end"),
        ("/reports/predictions", {"start": "2026-11-03T00:00:00Z", "end": "2026-11-02T00:00:00Z"}, "end"),
        ("/reports/predictions", {"status": "DONE"}, "status"),
        ("/reports/predictions", {"limit": "-1"}, "limit"),
        ("/reports/predictions", {"limit": "0"}, "limit"),
        ("/reports/predictions", {"limit": "ten"}, "limit"),
        ("/reports/predictions", {"limit": "100000"}, "limit"),
        ("/reports/predictions", {"cursor": "garbage"}, "cursor"),
        ("/reports/predictions", {"ordering": "model"}, "ordering"),
        ("/reports/predictions", {"config": "x"}, "config"),
        ("/reports/predictions", {"config": "9.2e18"}, "config"),
        ("/reports/predictions", {"config": "1.5"}, "config"),
        ("/reports/predictions", {"config": str(2**63)}, "config"),
        ("/reports/predictions", {"config": "0"}, "config"),
        ("/reports/models/global", {"start": "not-a-date"}, "start"),
        ("/reports/models/global", {"end": "0001-01-02T00:00:00Z"}, "end"),
        ("/reports/models/params", {"start": "2026-11-03T00:00:00Z", "end": "2026-11-02T00:00:00Z"}, "end"),
        ("/reports/models/metrics", {"end": "soon"}, "end"),
        ("/reports/models/metrics", {"limit": "-5"}, "limit"),
        ("/reports/snapshots", {"since": "x"}, "since"),
        ("/reports/feeds/tail", {"limit": "-1"}, "limit"),
        ("/reports/checkpoints", {"status": "DONE"}, "status"),
        ("/reports/merkle/proof", {}, "snapshot_id"),
        ("/reports/merkle/proof", {"snapshot_id": "-3"}, "snapshot_id"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(path, params, field):
    response = APIClient().get(path, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["detail"].startswith(field), body


@pytest.mark.parametrize("value", ["-1", "1.5", "lots"])
def test_bad_total_prize_is_400(checkpoint, value):
    response = APIClient().get(f"/reports/checkpoints/{checkpoint.pk}/prizes", {"total_prize": value})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("total_prize")


def test_a_checkpoint_without_emission_has_no_emission(checkpoint):
    bare = make_checkpoint(period_start=checkpoint.period_end, emission={})
    response = APIClient().get(f"/reports/checkpoints/{bare.pk}/emission")
    assert response.status_code == 404
    assert "emission" in response.json()["detail"]
    assert json.loads(APIClient().get("/reports/checkpoints/latest").content)["id"] == bare.pk
