"""Property test of the API from its own OpenAPI schema: no input makes it answer 5xx."""

import importlib.util

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from coordinator_site.wsgi import application
from reports.services import api_key_create
from tests.reports.helpers import build_world

HAS_CHECKPOINT_SERVICES = importlib.util.find_spec("checkpoints.services") is not None
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
if not HAS_CHECKPOINT_SERVICES:
    # Until the checkpoints app's services/formats/merkle land, the paths calling them cannot answer.
    schema = schema.exclude(path_regex=r"(prizes|cli-format|merkle/proof)$")


@pytest.fixture
def admin_headers(db):
    # The real WSGI handler closes the connection at request end, which would break the test's
    # transaction; Django's test client unhooks the same signal handler.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield _headers()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _headers():
    build_world()
    _, raw = api_key_create(name="fuzz", scope="admin")
    # Without the checkpoints services (not merged yet) an authorised write cannot succeed.
    return {"X-API-Key": raw} if HAS_CHECKPOINT_SERVICES else {}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, admin_headers):
    response = case.call(headers=admin_headers)
    # The node-health endpoint answers a red node with its documented 503 (for uptime monitors).
    if case.path == "/reports/health" and response.status_code == 503:
        assert response.json()["level"] == "red"
        return
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
