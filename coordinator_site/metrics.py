"""Prometheus metrics of every process of a node (docs/operations.md, "Metrics").

Every metric the apps observe is defined here, once, with bounded labels: `stream` (the
configured feeds), `scope_key` (the prediction configs), `worker` (four names), `route` (URL
patterns, never raw paths) and `model`, which is capped at METRICS_MODEL_LABEL_CAP distinct
models per process (the rest are counted under "other").

Processes: with PROMETHEUS_MULTIPROC_DIR set (run_node sets it for all its children; compose
shares a volume), prometheus-client's multiprocess mode writes each process's values to files
there and the web server's `/metrics` merges them, so one scrape covers gunicorn's workers and
the four workers. Files are named by host and pid, so containers sharing the volume never
collide. The stage-level series (feed lag, backlogs, lateness, worker heartbeat age) are not
here: `/metrics` computes them from the database through the one health model
(`monitoring.metrics`), so they exist whichever process is up.
"""

import os
import socket
import threading
import time

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram, values

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def process_identifier(pid: int | None = None) -> str:
    """`host-pid`: unique across containers that share one multiprocess directory."""
    host = socket.gethostname().replace("_", "-") or "host"
    return f"{host}-{os.getpid() if pid is None else pid}"


if os.environ.get(MULTIPROC_DIR_ENV):
    os.makedirs(os.environ[MULTIPROC_DIR_ENV], exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

PROCESS_UP = Gauge(
    "coordinator_process_up",
    "1 per live process of the node, by role (web, run_feed, run_predict, run_score, run_checkpoint).",
    ["role"],
    multiprocess_mode="liveall",
)
FEED_RECORDS = Counter("coordinator_feed_records_ingested", "Tape records written, per stream.", ["stream"])
FEED_POLL_ERRORS = Counter("coordinator_feed_poll_errors", "Failed polls of a provider, per stream.", ["stream"])
PREDICT_SLOT_LATENESS = Histogram(
    "coordinator_predict_slot_lateness_seconds",
    "How late a schedule slot was served (cycle start minus the slot time).",
    ["scope_key"],
    buckets=LATENESS_BUCKETS,
)
PREDICT_SLOTS_MISSED = Counter(
    "coordinator_predict_slots_missed", "Schedule slots skipped because the worker was down.", ["scope_key"]
)
MODEL_CALL_SECONDS = Histogram(
    "coordinator_model_call_seconds", "Per-model predict call latency.", ["model"], buckets=LATENCY_BUCKETS
)
MODEL_ANSWERS = Counter(
    "coordinator_model_answers",
    "Predict answers per model by status (ok, TIMEOUT, MODEL_ERROR, INVALID_OUTPUT, ABSENT).",
    ["model", "status"],
)
SCORE_SCORED = Counter("coordinator_score_predictions_scored", "Predictions scored.")
SCORE_ERRORS = Counter(
    "coordinator_score_errors", "Scoring problems: a prediction's scoring error, an Input that failed.", ["kind"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "coordinator_http_request_duration_seconds",
    "Web request latency by URL route (pattern, not path) and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_RESPONSES = Counter(
    "coordinator_http_responses", "Web responses by route and status class (2xx..5xx).", ["route", "status"]
)
WORKER_UNITS = Counter("coordinator_worker_units", "Units of work run, by worker and outcome.", ["worker", "outcome"])
WORKER_UNIT_SECONDS = Histogram(
    "coordinator_worker_unit_seconds", "Duration of one unit of work.", ["worker"], buckets=LATENCY_BUCKETS
)
WORKER_LAST_BEAT = Gauge(
    "coordinator_worker_process_last_beat_timestamp_seconds",
    "Unix time of this worker process's newest heartbeat (per process).",
    ["worker"],
    multiprocess_mode="liveall",
)
WORKER_CADENCE = Gauge(
    "coordinator_worker_process_cadence_seconds",
    "The longest this worker process may go between heartbeats.",
    ["worker"],
    multiprocess_mode="liveall",
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_models_lock = threading.Lock()
_model_labels: set[str] = set()
OTHER_MODELS = "other"


def model_label(model_id: str) -> str:
    """The model's own label for the first METRICS_MODEL_LABEL_CAP models seen, else "other"."""
    if model_id in _model_labels:
        return model_id
    with _models_lock:
        if len(_model_labels) < settings.METRICS_MODEL_LABEL_CAP:
            _model_labels.add(model_id)
            return model_id
    return OTHER_MODELS


def set_process_role(role: str) -> None:
    """Mark this process live under `role` (web or a worker name)."""
    PROCESS_UP.labels(role=role).set(1)


def worker_beat(worker: str, *, cadence_seconds: float | None = None, stopped: bool = False) -> None:
    if cadence_seconds is not None:
        WORKER_CADENCE.labels(worker=worker).set(cadence_seconds)
    WORKER_LAST_BEAT.labels(worker=worker).set(0 if stopped else time.time())


def worker_unit(worker: str, *, seconds: float, error: bool) -> None:
    WORKER_UNITS.labels(worker=worker, outcome="error" if error else "ok").inc()
    WORKER_UNIT_SECONDS.labels(worker=worker).observe(seconds)


def feed_polled(stream: str, *, written: int, error: bool) -> None:
    if written:
        FEED_RECORDS.labels(stream=stream).inc(written)
    if error:
        FEED_POLL_ERRORS.labels(stream=stream).inc()


def predict_slot_served(scope_key: str, *, lateness_seconds: float, missed: int = 0) -> None:
    PREDICT_SLOT_LATENESS.labels(scope_key=scope_key).observe(max(0.0, lateness_seconds))
    if missed:
        PREDICT_SLOTS_MISSED.labels(scope_key=scope_key).inc(missed)


def model_answered(model_id: str, *, status: str, seconds: float | None) -> None:
    label = model_label(model_id)
    MODEL_ANSWERS.labels(model=label, status=status).inc()
    if seconds is not None:
        MODEL_CALL_SECONDS.labels(model=label).observe(seconds)


def scored(*, predictions: int, scoring_errors: int = 0, input_errors: int = 0) -> None:
    if predictions:
        SCORE_SCORED.inc(predictions)
    if scoring_errors:
        SCORE_ERRORS.labels(kind="scoring_error").inc(scoring_errors)
    if input_errors:
        SCORE_ERRORS.labels(kind="input_error").inc(input_errors)


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (gunicorn's child_exit, run_node's supervisor)."""
    path = os.environ.get(MULTIPROC_DIR_ENV)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process_identifier(pid), path)


class RequestMetricsMiddleware:
    """Request latency and status class by route: the URL pattern, so label values stay bounded."""

    def __init__(self, get_response):
        self.get_response = get_response
        # Label children by (route, method, status class): bounded, and looked up once each.
        self._children: dict[tuple[str, str, int], tuple] = {}
        set_process_role("web")

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else ""
        method = request.method if request.method in HTTP_METHODS else "other"
        key = (route, method, response.status_code // 100)
        children = self._children.get(key)
        if children is None:
            children = self._children.setdefault(key, self._label(*key))
        children[0].observe(time.perf_counter() - started)
        children[1].inc()
        return response

    @staticmethod
    def _label(route: str, method: str, status_class: int) -> tuple:
        route = f"/{route}" if route else "unmatched"
        return (
            HTTP_REQUEST_SECONDS.labels(route=route, method=method),
            HTTP_RESPONSES.labels(route=route, status=f"{status_class}xx"),
        )
