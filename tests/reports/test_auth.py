"""API keys and the auth matrix: writes always need an admin key or a staff session."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from checkpoints.models import Checkpoint
from reports.models import ApiKey
from reports.services import api_key_create, api_key_revoke, hash_secret
from tests.factories import T0, make_checkpoint
from tests.reports.helpers import EMISSION, staff_client

pytestmark = pytest.mark.django_db
TX = "3x3vw8k11QcDV6sq39ECi9GWNnQBqjAc2tpz5KjsJGPiNZBMMXtoJtxc4oF3dmZNS21v6Cne6EzEnUTXk8eM2UkR"
WRITES = [
    ("post", "confirm", {"tx_hash": TX}),
    ("patch", "status", {"status": "SUBMITTED"}),
]


@pytest.fixture
def checkpoint():
    return make_checkpoint(emission=EMISSION)


def call(client, method, checkpoint, action, body, **headers):
    return getattr(client, method)(
        f"/reports/checkpoints/{checkpoint.pk}/{action}", json.dumps(body), content_type="application/json", **headers
    )


def assert_unchanged(checkpoint):
    fresh = Checkpoint.objects.get(pk=checkpoint.pk)
    assert (fresh.status, fresh.tx_hash) == (checkpoint.status, checkpoint.tx_hash)
    assert not fresh.transitions.exists()


@pytest.mark.parametrize(("method", "action", "body"), WRITES)
def test_write_without_credentials_is_401(checkpoint, method, action, body):
    response = call(APIClient(), method, checkpoint, action, body)
    assert response.status_code == 401
    assert_unchanged(checkpoint)


@pytest.mark.parametrize(("method", "action", "body"), WRITES)
def test_write_with_a_read_key_is_403(checkpoint, method, action, body):
    _, raw = api_key_create(name="reader", scope="read")
    response = call(APIClient(), method, checkpoint, action, body, HTTP_X_API_KEY=raw)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert_unchanged(checkpoint)


@pytest.mark.parametrize(("method", "action", "body"), WRITES)
def test_write_with_a_revoked_admin_key_is_401(checkpoint, method, action, body):
    key, raw = api_key_create(name="old", scope="admin")
    api_key_revoke(key=key)
    response = call(APIClient(), method, checkpoint, action, body, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert_unchanged(checkpoint)


@pytest.mark.parametrize(("method", "action", "body"), WRITES)
def test_write_with_the_key_in_the_query_string_is_401(checkpoint, method, action, body):
    _, raw = api_key_create(name="admin", scope="admin")
    response = getattr(APIClient(), method)(
        f"/reports/checkpoints/{checkpoint.pk}/{action}?api_key={raw}",
        json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 401
    assert "query string" in response.json()["detail"]
    assert_unchanged(checkpoint)


@pytest.mark.parametrize(("method", "action", "body"), WRITES)
def test_write_with_a_non_staff_session_is_403(checkpoint, method, action, body):
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("someone", password="pw"))
    assert call(client, method, checkpoint, action, body).status_code == 403
    assert_unchanged(checkpoint)


@pytest.mark.parametrize("header", ["HTTP_X_API_KEY", "HTTP_AUTHORIZATION"])
def test_confirm_with_an_admin_key_is_200(checkpoint, header):
    pytest.importorskip("checkpoints.services")
    _, raw = api_key_create(name="ops", scope="admin")
    value = raw if header == "HTTP_X_API_KEY" else f"Bearer {raw}"
    response = call(APIClient(), "post", checkpoint, "confirm", {"tx_hash": TX}, **{header: value})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "SUBMITTED"
    transition = Checkpoint.objects.get(pk=checkpoint.pk).transitions.get()
    assert transition.actor.startswith("api-key:ops/")


def test_status_with_a_staff_session_is_200(checkpoint):
    pytest.importorskip("checkpoints.services")
    client = staff_client()
    assert call(client, "post", checkpoint, "confirm", {"tx_hash": TX}).status_code == 200
    response = call(client, "patch", checkpoint, "status", {"status": "CLAIMABLE"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "CLAIMABLE"
    assert [t.actor for t in Checkpoint.objects.get(pk=checkpoint.pk).transitions.all()] == ["user:staff"] * 2


READS = ["/reports/leaderboard", "/reports/models", "/reports/predictions", "/reports/checkpoints", "/reports/schema"]


@pytest.mark.parametrize("path", READS)
def test_reads_are_public_by_default(path):
    assert APIClient().get(path).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_key_when_required(settings, path):
    settings.REPORTS_REQUIRE_AUTH = True
    assert APIClient().get(path).status_code == 401
    _, raw = api_key_create(name="reader", scope="read")
    assert APIClient().get(path, HTTP_X_API_KEY=raw).status_code == 200
    assert staff_client().get(path).status_code == 200


def test_unknown_and_malformed_keys_are_401():
    _, raw = api_key_create(name="reader", scope="read")
    wrong_secret = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    for value in [wrong_secret, "cnk_nope_secret", "not-a-key", ""]:
        response = APIClient().get("/reports/models", HTTP_AUTHORIZATION=f"Bearer {value}")
        assert response.status_code == 401, value


def test_only_the_hash_is_stored():
    key, raw = api_key_create(name="reader", scope="read")
    assert raw.split("_")[1] == key.prefix
    secret = raw.split("_", 2)[2]
    assert secret not in key.hashed_secret
    assert key.hashed_secret == hash_secret(secret)


def test_last_used_at_is_written_at_most_once_a_minute():
    key, raw = api_key_create(name="reader", scope="read")
    client = APIClient()
    with time_machine.travel(T0, tick=False):
        client.get("/reports/models", HTTP_X_API_KEY=raw)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == T0
    with time_machine.travel(T0 + timedelta(seconds=59), tick=False):
        client.get("/reports/models", HTTP_X_API_KEY=raw)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == T0
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        client.get("/reports/models", HTTP_X_API_KEY=raw)
        assert ApiKey.objects.get(pk=key.pk).last_used_at == T0 + timedelta(seconds=61)


def test_create_api_key_command_prints_the_key_once(worker_env, manage_py):
    import subprocess

    result = subprocess.run(
        [*manage_py, "create_api_key", "--name", "ci", "--scope", "admin"],
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    raw = result.stdout.strip()
    assert raw.startswith("cnk_")
    assert raw not in result.stderr
    key = ApiKey.objects.get(name="ci")
    assert key.scope == "admin"
    assert raw.split("_")[1] == key.prefix
    assert APIClient().get("/reports/models", HTTP_X_API_KEY=raw).status_code == 200


def test_create_api_key_command_rejects_an_unknown_scope(worker_env, manage_py):
    import subprocess

    result = subprocess.run(
        [*manage_py, "create_api_key", "--name", "ci", "--scope", "root"],
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "invalid choice" in result.stderr
    assert not ApiKey.objects.exists()


def test_admin_revoke_action_revokes():
    from django.contrib.admin.sites import site

    key, raw = api_key_create(name="ops", scope="admin")
    client = staff_client()
    user = get_user_model().objects.get(username="staff")
    user.is_superuser = True
    user.save()
    response = client.post("/admin/reports/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert APIClient().get("/reports/models", HTTP_X_API_KEY=raw).status_code == 401
    assert site.is_registered(ApiKey)
