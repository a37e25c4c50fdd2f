"""/reports/predictions as the reference web UI reads it (REFERENCE_NODE.md §1.8, DESIGN.md §10)."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from predictions.choices import PredictionStatus
from reports.api.serializers import iso_time, utc_time
from tests.factories import T0, make_config, make_input, make_model, make_prediction, make_score

pytestmark = pytest.mark.django_db
NAIVE_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")


def rows(params=None):
    response = APIClient().get("/reports/predictions", params or {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@pytest.fixture
def world():
    alpha = make_model(model_id="alpha")
    btc = make_config(scope_key="BTC-60", scope_template={"subject": "BTC"}, horizon_seconds=60)
    eth = make_config(scope_key="ETH-300", scope_template={"subject": "ETH"}, horizon_seconds=300)
    btc_input = make_input(
        config=btc, scope={"subject": "BTC", "scope_key": "BTC-60", "horizon_seconds": 60, "step_seconds": 5}
    )
    eth_input = make_input(
        config=eth,
        scheduled_for=T0 + timedelta(minutes=1),
        scope={"subject": "ETH", "scope_key": "ETH-300", "horizon_seconds": 300, "step_seconds": 5},
    )
    scored = make_prediction(input=btc_input, model=alpha, status=PredictionStatus.SCORED)
    make_score(prediction=scored, value=0.25, scored_at=T0 + timedelta(seconds=61, microseconds=250))
    pending = make_prediction(input=eth_input, model=alpha)
    return {"btc": btc, "scored": scored, "pending": pending}


def test_prediction_config_id_is_the_config_id_as_text(world):
    row = next(r for r in rows() if r["id"] == world["scored"].pk)
    assert row["prediction_config_id"] == str(world["btc"].pk)


def test_scored_at_has_the_same_naive_utc_format_as_performed_at(world):
    row = next(r for r in rows() if r["id"] == world["scored"].pk)
    assert NAIVE_UTC.match(row["performed_at"])
    assert row["scored_at"] == "2026-11-02T00:01:01.000250"
    # The UI appends "Z" to both; other timestamps keep their offset.
    assert datetime.fromisoformat(row["scored_at"] + "+00:00") == T0 + timedelta(seconds=61, microseconds=250)
    assert row["resolvable_at"].endswith("Z")


def test_unscored_rows_say_so_in_every_score_field(world):
    row = next(r for r in rows() if r["id"] == world["pending"].pk)
    assert (row["score_value"], row["score_success"], row["score_failed"], row["scored_at"]) == (
        None,
        False,
        True,
        None,
    )
    assert row["score_failed_reason"] == "Prediction not scored"
    scored = next(r for r in rows() if r["id"] == world["scored"].pk)
    assert (scored["score_success"], scored["score_failed"]) == (True, False)


def test_scope_carries_asset_horizon_and_parameters_under_the_reference_names(world):
    row = next(r for r in rows() if r["id"] == world["scored"].pk)
    assert row["scope"]["subject"] == "BTC"
    assert row["scope"]["resolve_horizon_seconds"] == row["scope"]["horizon_seconds"] == 60
    assert row["scope"]["step_seconds"] == 5


def test_filters_by_asset_and_horizon(world):
    assert [r["id"] for r in rows({"subject": "ETH"})] == [world["pending"].pk]
    assert [r["id"] for r in rows({"horizon_seconds": 60})] == [world["scored"].pk]
    assert rows({"subject": "SOL"}) == []


def test_hand_built_offset_times_match_the_api_field_encoding():
    for value in (T0, T0 + timedelta(microseconds=7), datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)):
        assert utc_time(value) == iso_time(value)


def test_cursor_pages_of_one_model_cover_its_history_once(world):
    beta = make_model(model_id="beta")
    for i in range(5):
        make_prediction(input=make_input(config=world["btc"], scheduled_for=T0 + timedelta(hours=i + 1)), model=beta)
    seen, url = [], "/reports/predictions?limit=2&model_id=beta"
    while url:
        response = APIClient().get(url, HTTP_ACCEPT="application/json")
        seen += [r["id"] for r in response.json()]
        link = response.headers.get("Link")
        url = re.match(r"<([^>]+)>", link).group(1) if link else None
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the database-built rows are PostgreSQL only")
def test_rows_built_by_the_database_equal_the_rows_built_in_python(world):
    from reports import selectors
    from reports.api.serializers import prediction_row

    make_score(
        prediction=make_prediction(
            input=make_input(config=world["btc"], scheduled_for=T0 + timedelta(hours=2)),
            model=make_model(model_id="nan-scorer"),
            status=PredictionStatus.FAILED,
            failure_reason="TIMEOUT",
            failure_detail='quote " and backslash \\ and ünïcode',
            output=None,
        ),
        value=float("nan"),
        result={},
        success=False,
        failed_reason="SCORING_ERROR",
    )
    queryset = selectors.predictions()
    by_database = [json.loads(text) for text, _, _ in selectors.prediction_json_rows(queryset, limit=10)]
    in_python = [prediction_row(row) for row in selectors.prediction_rows(queryset, limit=10)]
    assert len(by_database) == 3
    assert by_database == in_python


def test_an_unknown_model_filter_is_an_empty_page_not_an_error(world):
    assert rows({"model_id": "nobody"}) == []
