"""No N+1: each list costs a fixed number of queries whatever its length."""

from datetime import timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from predictions.choices import PredictionStatus
from tests.factories import T0, make_input, make_model, make_prediction, make_score, make_snapshot
from tests.reports.helpers import build_world

pytestmark = pytest.mark.django_db
RANGE = "start=2026-11-01T00:00:00Z&end=2026-11-03T00:00:00Z"


@pytest.fixture
def grown_world():
    """build_world plus many more rows, so a per-row query would show in the count."""
    world = build_world()
    for i in range(12):
        model = make_model()
        input_ = make_input(config=world["config"], scheduled_for=T0 + timedelta(minutes=10 + i))
        make_score(prediction=make_prediction(input=input_, model=model, status=PredictionStatus.SCORED))
        make_snapshot(model=model, period_start=T0)
    return world


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        ("/reports/models", 1),
        (f"/reports/models/global?{RANGE}", 1),
        (f"/reports/models/params?{RANGE}", 2),
        (f"/reports/models/metrics?{RANGE}", 1),
        ("/reports/snapshots", 1),
        ("/reports/feeds/tail", 1),
        ("/reports/feeds", 5),
        ("/reports/checkpoints", 1),
        ("/reports/checkpoints/latest", 3),  # + the late scores of its period
        ("/reports/emissions/latest", 1),
    ],
)
def test_query_count_is_fixed(grown_world, django_assert_num_queries, path, queries):
    client = APIClient()
    with django_assert_num_queries(queries):
        response = client.get(path, HTTP_ACCEPT="application/json")
    assert response.status_code == 200


def test_a_predictions_page_is_one_query_once_its_rows_are_cached(grown_world, django_assert_num_queries):
    client = APIClient()
    # PostgreSQL: the rows' versions, then (not cached yet) the rows' JSON; elsewhere one query.
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 1):
        first = client.get("/reports/predictions?limit=50", HTTP_ACCEPT="application/json")
    with django_assert_num_queries(1):
        again = client.get("/reports/predictions?limit=50", HTTP_ACCEPT="application/json")
    assert first.status_code == 200
    assert again.content == first.content


def test_leaderboard_reads_only_the_head_once_rendered(grown_world, django_assert_num_queries):
    client = APIClient()
    client.get("/reports/leaderboard", HTTP_ACCEPT="application/json")
    with django_assert_num_queries(1):
        response = client.get("/reports/leaderboard", HTTP_ACCEPT="application/json")
    assert [r["model_id"] for r in response.json()] == ["alpha", "beta"]


def test_leaderboard_skips_the_head_query_within_the_recheck_interval(grown_world, django_assert_num_queries, settings):
    settings.REPORTS_LEADERBOARD_RECHECK_SECONDS = 3600
    client = APIClient()
    client.get("/reports/leaderboard", HTTP_ACCEPT="application/json")
    with django_assert_num_queries(0):
        response = client.get("/reports/leaderboard", HTTP_ACCEPT="application/json")
    assert [r["model_id"] for r in response.json()] == ["alpha", "beta"]
