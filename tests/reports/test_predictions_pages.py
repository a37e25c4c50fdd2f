"""/reports/predictions pages against a reference built the slow, obvious way.

On PostgreSQL the JSON list is one hand-written, prepared query and the filters are cleaned
without a FilterSet per request (reports.api.views.PredictionViewSet.json_page); elsewhere the
generic path runs. Either way every page, followed by its Link headers, must hold exactly the rows
that a per-request django-filter FilterSet selects, in keyset order, built by the Python row
builder; and every refusal must be the one the FilterSet's validation gives.
"""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from rest_framework.test import APIClient

from predictions.choices import PredictionStatus
from reports import selectors
from reports.api.filters import BOUNDARY_CODES, PredictionFilter
from reports.api.serializers import prediction_row
from tests.factories import T0, make_config, make_input, make_model, make_prediction, make_score

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    models = [make_model(model_id=f"pages-{n}") for n in range(3)]
    btc = make_config(scope_key="BTC-60", scope_template={"subject": "BTC"}, horizon_seconds=60)
    eth = make_config(scope_key="ETH-300", scope_template={"subject": "ETH"}, horizon_seconds=300)
    n = 0
    for minute in range(4):
        for config, subject in ((btc, "BTC"), (eth, "ETH")):
            # Both configs' inputs share a time (ties broken by id); one has a fraction of a second.
            at = T0 + timedelta(minutes=minute, microseconds=250 if minute == 3 else 0)
            scope = {"subject": subject, "scope_key": config.scope_key, "horizon_seconds": config.horizon_seconds}
            input_ = make_input(config=config, scheduled_for=at, scope=scope)
            for model in models:
                n += 1
                if n % 5 == 0:
                    make_prediction(input=input_, model=model, status=PredictionStatus.FAILED, failure_reason="TIMEOUT")
                elif n % 3 == 0:
                    make_prediction(input=input_, model=model)
                else:
                    prediction = make_prediction(input=input_, model=model, status=PredictionStatus.SCORED)
                    make_score(prediction=prediction, value=n / 7, scored_at=at + timedelta(seconds=61))
    return {"btc": btc, "eth": eth, "models": models}


def reference(params: dict) -> list[dict]:
    """The rows a per-request FilterSet selects, in the requested keyset order, built in Python."""
    data = QueryDict(mutable=True)
    for key, value in params.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    filterset = PredictionFilter(data=data, queryset=selectors.predictions())
    assert filterset.is_valid(), filterset.errors
    ordering = params.get("ordering", "-performed_at")
    queryset = filterset.qs.order_by(ordering, "-id" if ordering.startswith("-") else "id")
    return [prediction_row(row) for row in selectors.prediction_rows(queryset, limit=10_000)]


def follow(params: dict) -> list[dict]:
    """Every page of /reports/predictions with `params`, following Link headers."""
    limit = int(params.get("limit", 100))
    response = APIClient().get("/reports/predictions", params, HTTP_ACCEPT="application/json")
    rows = []
    while True:
        assert response.status_code == 200, response.content
        page = json.loads(response.content)
        assert len(page) <= limit
        rows += page
        link = response.headers.get("Link")
        if not link:
            return rows
        assert len(page) == limit
        url = re.match(r'<([^>]+)>; rel="next"', link).group(1)
        response = APIClient().get(url, HTTP_ACCEPT="application/json")


def params_cases(world):
    alpha, beta, _gamma = (m.model_id for m in world["models"])
    return [
        {},
        {"limit": "1"},
        {"limit": "4"},
        {"limit": "5", "ordering": "performed_at"},
        {"limit": "2", "model_id": alpha},
        {"limit": "3", "projectIds": f"{alpha},{beta}"},
        {"model_id": [alpha, beta], "projectIds": beta},  # both given: rows of models in both
        {"model_id": "nobody"},
        {"model_id": f"{alpha},nobody", "limit": "2"},
        {"projectIds": ""},  # empty: every model
        {"scope_key": "ETH-300", "limit": "3"},
        {"scope_key": "  ETH-300  "},  # stripped, as the form field does
        {"scope_key": ""},
        {"config": str(world["btc"].pk), "limit": "2"},
        {"subject": "ETH", "limit": "2", "ordering": "performed_at"},
        {"subject": "DOGE"},
        {"horizon_seconds": "60", "limit": "3"},
        {"horizon_seconds": "0"},
        {"status": "SCORED", "limit": "2"},
        {"status": "FAILED", "failure_reason": "TIMEOUT"},
        {"start": (T0 + timedelta(minutes=2)).isoformat(), "limit": "2"},
        {"end": (T0 + timedelta(minutes=2)).isoformat(), "ordering": "performed_at", "limit": "2"},
        {"start": "2026-11-02T00:02:00+01:00", "end": "2026-11-02T00:03:00Z"},
        {"model_id": beta, "subject": "BTC", "status": "SCORED", "horizon_seconds": "60", "limit": "1"},
        {"unknown": "ignored", "limit": "7"},
    ]


def test_every_page_holds_the_rows_a_filterset_selects_in_keyset_order(world):
    for params in params_cases(world):
        assert follow(params) == reference(params), params


@pytest.mark.parametrize(
    "params",
    [
        {"config": "x"},
        {"config": "0"},
        {"horizon_seconds": "-1"},
        {"status": "DONE"},
        {"status": ""},
        {"failure_reason": "NOPE"},
        {"start": "yesterday"},
        {"start": "2026-11-03T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
        {"config": "x", "status": "DONE"},  # the first bad filter, in the FilterSet's order
        {"status": "DONE", "limit": "0"},  # filters are checked before the page parameters
        {"limit": "0"},
        {"limit": "100000"},
        {"ordering": "model"},
        {"cursor": "garbage"},
        {"limit": "x", "cursor": "garbage", "ordering": "x"},
    ],
)
def test_every_refusal_is_the_one_the_filterset_gives(world, params):
    response = APIClient().get("/reports/predictions", params, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    data = QueryDict(mutable=True)
    data.update(params)
    filterset = PredictionFilter(data=data, queryset=selectors.predictions())
    if filterset.is_valid():  # a page parameter: the paginator's own message
        assert response.json()["detail"].startswith(next(k for k in ("ordering", "limit", "cursor") if k in params))
        return
    name, errors = next(iter(filterset.form.errors.as_data().items()))
    error = errors[0]
    message = error.message % error.params if error.params else error.message
    assert response.json() == {
        "detail": message if message.startswith(name) else f"{name}: {message}",
        "code": error.code if error.code in BOUNDARY_CODES else "MALFORMED",
    }


def prepared_pages() -> tuple[int, int]:
    """(page statements prepared on this connection, their executions so far)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements "
            "WHERE statement LIKE '%%row_to_json%%'"
        )
        return cursor.fetchone()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL only")
def test_the_page_query_is_prepared_once_per_connection(world, settings):
    settings.DB_PREPARED_STATEMENTS = True
    settings.REPORTS_ROW_CACHE_ROWS = 0  # every page read as JSON (the cache would serve the repeats)
    before = prepared_pages()
    for _ in range(3):
        assert len(follow({"limit": "50", "subject": "BTC"})) == 12
    assert prepared_pages() == (before[0] + 1, before[1] + 3)
    settings.DB_PREPARED_STATEMENTS = False  # e.g. behind a transaction-pooling proxy
    assert len(follow({"limit": "49", "subject": "ETH"})) == 12
    assert prepared_pages() == (before[0] + 1, before[1] + 3)
