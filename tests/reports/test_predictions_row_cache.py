"""/reports/predictions on PostgreSQL serves each row's JSON from a per-process cache checked
against the row's version (reports.selectors._RowCache): a page must never show a row as it was
before a change, whatever changed (status, score written or removed, output) and even within one
transaction (the test's own, here), and must read exactly as with the cache off."""

import json

import pytest
from django.db import connection
from rest_framework.test import APIClient

from predictions.choices import PredictionStatus
from predictions.models import Prediction
from reports import selectors
from scoring.models import Score
from tests.factories import make_input, make_model, make_prediction, make_score

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the row cache is PostgreSQL's page path"),
]


def page(**params) -> list[dict]:
    response = APIClient().get("/reports/predictions", {"limit": 100, **params})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def row(rows: list[dict], prediction: Prediction) -> dict:
    return next(r for r in rows if r["id"] == prediction.pk)


@pytest.fixture
def pending():
    input_ = make_input()
    models = [make_model(model_id=f"cache-{n}") for n in range(3)]
    return [make_prediction(input=input_, model=model) for model in models]


def test_a_scored_row_is_served_as_scored(pending):
    first = page()
    assert row(first, pending[0])["status"] == "PENDING"
    assert all(pk in selectors._ROW_CACHE.rows for pk in (p.pk for p in pending))
    assert page() == first  # served from the cache
    Prediction.objects.filter(pk=pending[0].pk).update(status=PredictionStatus.SCORED)
    make_score(prediction=pending[0], value=0.25)
    scored = row(page(), pending[0])
    assert (scored["status"], scored["score_value"], scored["score_success"]) == ("SCORED", 0.25, True)
    assert row(page(), pending[1])["status"] == "PENDING"


def test_a_scored_row_is_then_served_from_the_cache_in_one_query(pending, django_assert_num_queries):
    Prediction.objects.filter(pk=pending[0].pk).update(status=PredictionStatus.SCORED)
    make_score(prediction=pending[0], value=0.25)
    first = page()
    with django_assert_num_queries(1):  # a hit: the versions query only
        assert page() == first
    assert row(first, pending[0])["score_value"] == 0.25


def test_a_change_of_the_prediction_alone_or_of_its_score_alone_is_seen(pending):
    page()
    Prediction.objects.filter(pk=pending[1].pk).update(output={"p_up": 0.75})
    assert row(page(), pending[1])["output"] == {"p_up": 0.75}
    make_score(prediction=pending[2], value=0.5)  # a score without touching its prediction
    assert row(page(), pending[2])["score_value"] == 0.5
    Score.objects.filter(prediction=pending[2]).delete()
    assert row(page(), pending[2])["score_value"] is None


def test_the_filtered_page_and_the_cursor_page_read_the_same_rows_as_without_the_cache(pending, settings):
    model_id = pending[0].model.model_id
    params = [{}, {"model_id": model_id}, {"limit": 1}, {"status": "PENDING"}]
    cached = [page(**p) for p in params]
    cached = [page(**p) for p in params]  # the second time from the cache
    next_url = APIClient().get("/reports/predictions", {"limit": 1})["Link"]
    settings.REPORTS_ROW_CACHE_ROWS = 0
    assert [page(**p) for p in params] == cached
    assert APIClient().get("/reports/predictions", {"limit": 1})["Link"] == next_url


def test_the_cache_keeps_at_most_its_bound(pending, settings):
    selectors._ROW_CACHE.clear()
    settings.REPORTS_ROW_CACHE_ROWS = 2
    first = page()
    assert len(selectors._ROW_CACHE.rows) == 2
    assert page() == first  # a page the cache cannot hold whole is read from the database
