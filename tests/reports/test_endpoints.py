"""Every report endpoint over HTTP: shape and values."""

import json
import re
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from tests.factories import T0
from tests.reports.helpers import build_world, candle

pytestmark = pytest.mark.django_db
RANGE = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-03T00:00:00Z"}
NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")


@pytest.fixture
def world():
    return build_world()


@pytest.fixture
def api():
    return APIClient()


def get_json(api, path, params=None, status=200):
    response = api.get(path, params or {}, HTTP_ACCEPT="application/json")
    assert response.status_code == status, response.content
    return json.loads(response.content)


def test_healthz_reports_database_and_workers(api, world):
    from tests.factories import make_heartbeat

    make_heartbeat(name="run_score")
    body = get_json(api, "/healthz")
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert [w["name"] for w in body["workers"]] == ["run_score"]


def test_info_names_the_node(api, settings):
    settings.CRUNCH_ID = "btc-starter"
    settings.CRUNCH_PUBKEY = "Pubkey111"
    body = get_json(api, "/info")
    assert body == {
        "crunch_id": "btc-starter",
        "crunch_name": "Starter BTC direction",
        "crunch_address": "Pubkey111",
        "network": "devnet",
    }


def test_leaderboard_is_the_newest_one_ordered_by_rank_with_flattened_windows(api, world):
    rows = get_json(api, "/reports/leaderboard")
    assert [r["model_id"] for r in rows] == ["alpha", "beta"]
    first = rows[0]
    assert first["rank"] == 1
    assert first["model_name"] == "Alpha"
    assert first["score_metrics"] == {"score_recent": 0.2, "score_steady": 0.2, "score_anchor": None}
    assert first["score_recent"] == 0.2  # flattened window value
    assert first["score_anchor"] is None
    assert first["score_ranking"] == {"key": "score_recent", "value": 0.2, "direction": "asc"}
    assert first["created_at"] == "2026-11-02T00:00:00Z"
    assert isinstance(first["model_id"], str)


def test_leaderboard_is_an_empty_array_without_any(api):
    assert get_json(api, "/reports/leaderboard") == []


def test_leaderboard_follows_a_newer_row(api, world):
    from tests.reports.helpers import leaderboard_entry, make_leaderboard

    get_json(api, "/reports/leaderboard")  # warm the per-process cache
    make_leaderboard([leaderboard_entry(world["beta"], 1, 0.05)], created_at=T0 + timedelta(hours=1))
    assert [r["model_id"] for r in get_json(api, "/reports/leaderboard")] == ["beta"]


def test_models_lists_every_model_ordered(api, world):
    rows = get_json(api, "/reports/models")
    assert [r["model_id"] for r in rows] == ["alpha", "beta"]
    assert rows[0]["model_name"] == "Alpha"
    assert rows[0]["cruncher_index"] == 0
    assert set(rows[0]) >= {"model_id", "model_name", "cruncher_name", "cruncher_id", "deployment_id"}


def test_models_global_computes_window_means_from_scores(api, world):
    rows = get_json(api, "/reports/models/global", RANGE)
    by_id = {r["model_id"]: r for r in rows}
    assert [r["model_id"] for r in rows] == ["alpha", "beta"]
    assert by_id["alpha"]["score_recent"] == pytest.approx(0.2)  # mean of 0.1, 0.2, 0.3
    assert by_id["alpha"]["score_metrics"]["score_anchor"] == pytest.approx(0.2)
    assert by_id["alpha"]["score_ranking"]["key"] == "score_recent"
    assert by_id["alpha"]["score_count"] == 3
    assert by_id["alpha"]["performed_at"] == "2026-11-02T00:02:00"  # chart axis: no offset
    assert by_id["beta"]["score_recent"] == pytest.approx(0.5)


def test_models_global_filters_project_ids_comma_and_repeated(api, world):
    assert [r["model_id"] for r in get_json(api, "/reports/models/global", {**RANGE, "projectIds": "beta"})] == ["beta"]
    both = get_json(
        api, "/reports/models/global?projectIds=alpha,beta&start=2026-11-01T00:00:00Z&end=2026-11-03T00:00:00Z"
    )
    assert len(both) == 2
    repeated = api.get(
        "/reports/models/global?projectIds=alpha&projectIds=beta&start=2026-11-01T00:00:00Z&end=2026-11-03T00:00:00Z"
    )
    assert len(repeated.json()) == 2


def test_models_global_window_is_cut_by_end(api, world):
    rows = get_json(api, "/reports/models/global", {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:01:30Z"})
    alpha = next(r for r in rows if r["model_id"] == "alpha")
    assert alpha["score_count"] == 2
    assert alpha["score_recent"] == pytest.approx(0.15)


def test_models_params_groups_by_scope(api, world):
    rows = get_json(api, "/reports/models/params", RANGE)
    assert [(r["model_id"], r["scope_key"]) for r in rows] == [("alpha", "BTC-5m"), ("beta", "BTC-5m")]
    assert rows[0]["scope"]["subject"] == "BTC"
    assert rows[0]["subject"] == "BTC"
    assert rows[0]["horizon"] == 300
    assert NAIVE.match(rows[0]["performed_at"])


def test_models_metrics_is_one_row_per_snapshot_oldest_first(api, world):
    rows = get_json(api, "/reports/models/metrics", RANGE)
    assert [(r["model_id"], r["performed_at"]) for r in rows] == [
        ("alpha", "2026-11-02T00:00:00"),
        ("alpha", "2026-11-02T01:00:00"),
        ("beta", "2026-11-02T01:00:00"),
    ]
    assert rows[1]["value"] == 0.2
    assert rows[1]["coverage"] == 1.0
    assert rows[1]["prediction_count"] == 10
    assert rows[1]["period_end"] == "2026-11-02T01:00:00Z"


def test_predictions_carry_status_failure_output_and_score(api, world):
    rows = get_json(api, "/reports/predictions")
    assert len(rows) == 6
    keys = [(r["performed_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)  # newest first
    failed = next(r for r in rows if r["id"] == world["beta_failed"].pk)
    assert failed["status"] == "FAILED"
    assert failed["failure_reason"] == "TIMEOUT"
    assert failed["failure_detail"] == "no answer in 5s"
    assert failed["score_value"] is None
    assert failed["score_failed"] is True
    scored = next(r for r in rows if r["id"] == world["scored"][2].prediction_id)
    assert scored["model_id"] == "alpha"
    assert scored["output"] == {"p_up": 0.6}
    assert scored["score_value"] == pytest.approx(0.3)
    assert scored["score_failed"] is False
    assert scored["performed_at"] == "2026-11-02T00:02:00"
    assert scored["resolvable_at"] == "2026-11-02T00:07:00Z"
    assert scored["scope"]["scope_key"] == "BTC-5m"
    assert scored["prediction_config_id"] == str(world["config"].pk)


def test_predictions_filters(api, world):
    assert {r["model_id"] for r in get_json(api, "/reports/predictions", {"projectIds": "beta"})} == {"beta"}
    assert [r["status"] for r in get_json(api, "/reports/predictions", {"status": "ABSENT"})] == ["ABSENT"]
    assert len(get_json(api, "/reports/predictions", {"scope_key": "BTC-5m"})) == 6
    assert get_json(api, "/reports/predictions", {"scope_key": "nope"}) == []
    assert len(get_json(api, "/reports/predictions", {"config": world["config"].pk})) == 6
    window = get_json(api, "/reports/predictions", {"start": "2026-11-02T00:01:00Z", "end": "2026-11-02T00:02:00Z"})
    assert {r["performed_at"] for r in window} == {"2026-11-02T00:01:00"}


def test_predictions_pages_follow_the_link_header_without_gaps(api, world):
    seen, url, pages = [], "/reports/predictions?limit=4&ordering=performed_at", 0
    while url:
        response = api.get(url, HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        assert isinstance(response.json(), list)
        seen += [r["id"] for r in response.json()]
        link = response.headers.get("Link")
        url = re.match(r"<([^>]+)>", link).group(1) if link else None
        pages += 1
    assert pages == 2
    assert len(seen) == len(set(seen)) == 6


def test_feeds_summary(api, world):
    rows = {(r["source"], r["subject"], r["kind"], r["granularity"]): r for r in get_json(api, "/reports/feeds")}
    # The ingested stream, and the configured one (pyth/BTC/tick/1s by default) that has no data yet.
    assert rows[("pyth", "BTC", "tick", "1s")]["record_count"] == 0
    row = rows[("synthetic", "BTC", "candle", "1m")]
    assert row["record_count"] == 5
    assert row["oldest_ts"] == "2026-11-02T00:00:00Z"
    assert row["newest_ts"] == "2026-11-02T00:04:00Z"
    assert row["watermark_ts"] == "2026-11-02T00:04:00Z"
    assert set(row) >= {"record_count", "watermark_updated_at"}


def test_feeds_tail_is_newest_first_and_limited(api, world):
    rows = get_json(api, "/reports/feeds/tail", {"limit": 2, "subject": "BTC"})
    assert [r["ts_event"] for r in rows] == ["2026-11-02T00:04:00Z", "2026-11-02T00:03:00Z"]
    assert rows[0]["values"] == candle(104.0)
    assert get_json(api, "/reports/feeds/tail", {"subject": "ETH"}) == []


def test_snapshots_newest_first_and_filtered(api, world):
    rows = get_json(api, "/reports/snapshots")
    assert [r["period_start"] for r in rows] == ["2026-11-02T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-01T23:00:00Z"]
    alpha = get_json(api, "/reports/snapshots", {"model_id": "alpha", "ordering": "period_start"})
    assert [r["result_summary"]["value"] for r in alpha] == [0.3, 0.2]
    assert (
        get_json(api, "/reports/snapshots", {"since": "2026-11-02T00:00:00Z", "model_id": "beta"})[0]["model_id"]
        == "beta"
    )


def test_checkpoints_list_latest_and_detail(api, world):
    rows = get_json(api, "/reports/checkpoints")
    assert [r["id"] for r in rows] == [world["new_cp"].pk, world["old_cp"].pk]
    assert "ranking" not in rows[0]
    latest = get_json(api, "/reports/checkpoints/latest")
    assert latest["id"] == world["new_cp"].pk  # newest, never the oldest
    assert latest["ranking"][0]["model_id"] == "alpha"
    detail = get_json(api, f"/reports/checkpoints/{world['old_cp'].pk}")
    assert detail["emission"]["crunch"] == "CrunchPubkey111"
    assert detail["transitions"] == []
    assert get_json(api, "/reports/checkpoints", {"status": "PAID"}) == []


def test_checkpoint_emission(api, world):
    body = get_json(api, f"/reports/checkpoints/{world['new_cp'].pk}/emission")
    assert body == json.loads(json.dumps(world["new_cp"].emission))


def test_emissions_latest(api, world):
    body = get_json(api, "/reports/emissions/latest")
    assert body["checkpoint_id"] == world["new_cp"].pk
    assert body["status"] == "PENDING"
    assert body["emission"]["cruncher_rewards"][0]["reward_pct"] == 600_000_000


def test_schema_endpoints_come_from_the_provider(api):
    schema = get_json(api, "/reports/schema")
    assert schema["schema_version"] == "1"
    properties = [c["property"] for c in schema["leaderboard_columns"]]
    assert properties[:5] == ["model_id", "cruncher_name", "score_recent", "score_steady", "score_anchor"]
    assert get_json(api, "/reports/schema/leaderboard-columns") == schema["leaderboard_columns"]
    widgets = get_json(api, "/reports/schema/metrics-widgets")
    assert widgets == schema["metrics_widgets"]
    assert {w["endpointUrl"] for w in widgets} >= {"/reports/models/metrics", "/reports/predictions"}


def test_paths_have_no_trailing_slash_and_never_redirect(api, world):
    assert api.get("/reports/leaderboard/").status_code == 404
    assert api.get("/reports/models").status_code == 200


def test_browsable_api_renders_html(api, world):
    for path in ["/reports/leaderboard", "/reports/predictions", "/reports/checkpoints/latest", "/reports/feeds/tail"]:
        response = api.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html")


def test_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/reports/checkpoints/latest/prizes" in paths
    assert "/reports/checkpoints/{id}/confirm" in paths
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html  # our own static files
    assert "cdn." not in html
    assert "unpkg" not in html


def test_scores_are_json_numbers_never_nan(api, world):
    # Postgres float columns can hold NaN (JSON columns cannot on either database).
    from scoring.models import Score

    Score.objects.filter(pk=world["scored"][0].pk).update(value=float("nan"))
    Score.objects.filter(pk=world["scored"][1].pk).update(value=float("inf"))
    for path, params in [
        ("/reports/predictions", {}),
        ("/reports/models/global", RANGE),
        ("/reports/models/params", RANGE),
    ]:
        response = api.get(path, params, HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        assert b"NaN" not in response.content
        assert b"Infinity" not in response.content
    rows = get_json(api, "/reports/predictions", {"projectIds": "alpha", "ordering": "performed_at"})
    assert [r["score_value"] for r in rows][:2] == [None, None]


def test_cors_is_off_unless_origins_are_set(api, settings):
    headers = {"HTTP_ORIGIN": "https://ui.example"}
    assert "Access-Control-Allow-Origin" not in api.get("/reports/models", **headers).headers
    settings.CORS_ALLOWED_ORIGINS = ["https://ui.example"]
    response = api.get("/reports/models", **headers)
    assert response.headers["Access-Control-Allow-Origin"] == "https://ui.example"
