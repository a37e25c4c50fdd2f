"""The readers of the one health verdict (/healthz, /reports/health, the badge) and /metrics."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from coordinator_site import metrics
from coordinator_site.logging import JsonFormatter
from tests.factories import make_heartbeat, make_ingestion_state

pytestmark = pytest.mark.django_db
STAGE_WORKERS = ("run_feed", "run_predict", "run_score", "run_checkpoint")


def beating_node(*, silent=()):
    now = timezone.now()
    for name in STAGE_WORKERS:
        age = timedelta(minutes=5) if name in silent else timedelta(seconds=1)
        make_heartbeat(name=name, last_beat_at=now - age, cadence_seconds=7.0)
    make_ingestion_state(kind="tick", granularity="1s", last_event_ts=now - timedelta(seconds=1))


def samples(text):
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_green_node_all_readers_agree_and_healthz_is_200(client):
    beating_node()
    node = client.get("/reports/health")
    healthz = client.get("/healthz")
    page = client.get("/health").content.decode()
    assert (node.status_code, healthz.status_code) == (200, 200)
    assert node.json()["level"] == healthz.json()["level"] == "green"
    assert 'data-health="green"' in page
    assert {c["stage"] for c in node.json()["checks"]} == {"feed", "predict", "score", "checkpoint", "worker"} - {
        "predict"
    }


def test_a_dead_worker_makes_the_node_red_503_but_healthz_stays_200(client):
    beating_node(silent=("run_score",))
    node = client.get("/reports/health")
    healthz = client.get("/healthz")
    assert node.status_code == 503
    assert healthz.status_code == 200  # liveness of the web process: compose must not restart web
    body = healthz.json()
    assert (body["status"], body["level"]) == ("ok", "red")
    assert body["reason"] == "worker run_score: no heartbeat for 5 m (expected every 7 s)"
    assert node.json()["reason"] == body["reason"]
    assert 'data-health="red"' in client.get("/").content.decode()


def test_healthz_is_served_from_the_cached_verdict_without_a_query(client, settings, django_assert_num_queries):
    beating_node()
    settings.HEALTH_CACHE_SECONDS = 3600
    client.get("/healthz")
    with django_assert_num_queries(0):
        assert client.get("/healthz").json()["level"] == "green"


def test_metrics_expose_stage_series_of_the_whole_node(client):
    beating_node(silent=("run_checkpoint",))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    assert found[("coordinator_feed_lag_seconds", (("stream", "synthetic/BTC/tick/1s"),))] >= 1.0
    assert found[("coordinator_score_backlog_inputs", ())] == 0
    assert found[("coordinator_worker_up", (("worker", "run_checkpoint"),))] == 0
    assert found[("coordinator_worker_up", (("worker", "run_score"),))] == 1
    assert found[("coordinator_worker_cadence_seconds", (("worker", "run_score"),))] == 7.0
    assert found[("coordinator_node_health_level", ())] == 2
    # the request middleware labels by route pattern
    client.get("/reports/checkpoints/12345")
    found = samples(client.get("/metrics").content.decode())
    assert ("coordinator_http_request_duration_seconds_count", (("method", "GET"), ("route", "/metrics"))) in found
    assert any(
        name == "coordinator_http_request_duration_seconds_count" and "checkpoints/(?P<pk>" in dict(labels)["route"]
        for name, labels in found
    ), "routes are labelled by pattern, never by raw path"


def test_metrics_can_require_a_bearer_token(client, settings):
    settings.METRICS_BEARER_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_model_labels_are_capped(settings, monkeypatch):
    settings.METRICS_MODEL_LABEL_CAP = 2
    monkeypatch.setattr(metrics, "_model_labels", set())
    assert [metrics.model_label(m) for m in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]


def test_json_log_lines_carry_the_summary_fields():
    record = logging.LogRecord("worker.run_feed", logging.INFO, __file__, 1, "run_feed summary: units=3", None, None)
    record.fields = {"worker": "run_feed", "units": 3, "records": 42}
    payload = json.loads(JsonFormatter().format(record))
    assert payload["message"] == "run_feed summary: units=3"
    assert (payload["worker"], payload["units"], payload["records"]) == ("run_feed", 3, 42)
