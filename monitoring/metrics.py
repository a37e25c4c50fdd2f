"""`/metrics`: the node's stage-level series from the one health model, plus every process's own.

The stage series (feed lag, slot delay, backlogs, checkpoint due time, worker heartbeat age,
health levels) are read from `current_health()` at scrape time, so `/metrics` on the web server
describes the whole node whichever process is up. The per-process series (coordinator_site.metrics)
are merged from PROMETHEUS_MULTIPROC_DIR when it is set (run_node, compose), else this process's.
"""

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from coordinator_site.health import LEVEL_ORDER, NodeHealth
from coordinator_site.metrics import MULTIPROC_DIR_ENV
from monitoring.health import current_health

# (metric, help, stage, value key, label name)
STAGE_SERIES = (
    ("coordinator_feed_lag_seconds", "Age of the newest tape record, per stream.", "feed", "lag_seconds", "stream"),
    (
        "coordinator_feed_consecutive_errors",
        "Failed polls in a row, per stream.",
        "feed",
        "consecutive_errors",
        "stream",
    ),
    (
        "coordinator_predict_slot_delay_seconds",
        "How long the next due slot has waited (0 when not due yet), per config.",
        "predict",
        "slot_delay_seconds",
        "scope_key",
    ),
    (
        "coordinator_predict_slots_missed",
        "Whole slots gone by unserved, per config.",
        "predict",
        "slots_missed",
        "scope_key",
    ),
    (
        "coordinator_predict_answer_ratio",
        "Share of models that answered the newest slot, per config.",
        "predict",
        "answer_share",
        "scope_key",
    ),
    (
        "coordinator_predict_models_asked",
        "Models asked in the newest slot, per config.",
        "predict",
        "models_asked",
        "scope_key",
    ),
    ("coordinator_score_backlog_inputs", "Resolvable Inputs not scored yet.", "score", "backlog_inputs", None),
    (
        "coordinator_score_backlog_oldest_seconds",
        "Age of the oldest resolvable Input not scored yet (past its resolvable_at).",
        "score",
        "oldest_age_seconds",
        None,
    ),
    (
        "coordinator_checkpoint_seconds_until_due",
        "Seconds until the next checkpoint period ends (negative: ended and not built).",
        "checkpoint",
        "seconds_until_due",
        None,
    ),
    (
        "coordinator_checkpoint_waiting",
        "1 while an ended period cannot be built yet (see the health page for what it waits for).",
        "checkpoint",
        "waiting",
        None,
    ),
    (
        "coordinator_checkpoint_unconfirmed_age_seconds",
        "Age of the oldest built checkpoint not yet submitted on chain (0: none).",
        "checkpoint",
        "unconfirmed_age_seconds",
        None,
    ),
    (
        "coordinator_checkpoint_unverified",
        "Checkpoints whose verify_checkpoint found differences from the stored rows (0: none).",
        "checkpoint",
        "unverified",
        None,
    ),
    ("coordinator_worker_up", "1 while the worker beats within 1.5 times its cadence.", "worker", "up", "worker"),
    (
        "coordinator_worker_heartbeat_age_seconds",
        "Seconds since the worker's newest heartbeat.",
        "worker",
        "heartbeat_age_seconds",
        "worker",
    ),
    (
        "coordinator_worker_cadence_seconds",
        "The longest the worker may go between heartbeats (what it is judged against).",
        "worker",
        "cadence_seconds",
        "worker",
    ),
)


class StageCollector:
    """Gauges of the node's stages, from the one health verdict (cached a few seconds)."""

    def collect(self):
        health: NodeHealth = current_health()
        node = GaugeMetricFamily(
            "coordinator_node_health_level",
            "The node's health: 0 green, 1 amber, 2 red.",
            value=LEVEL_ORDER[health.level],
        )
        yield node
        levels = GaugeMetricFamily(
            "coordinator_health_check_level", "Each health check: 0 green, 1 amber, 2 red.", labels=["stage", "name"]
        )
        for check in health.checks:
            levels.add_metric([check.stage, check.name], LEVEL_ORDER[check.level])
        yield levels
        for metric, help_text, stage, key, label in STAGE_SERIES:
            family = GaugeMetricFamily(metric, help_text, labels=[label] if label else [])
            for check in health.by_stage(stage):
                value = check.values.get(key)
                if isinstance(value, int | float):
                    family.add_metric([check.name] if label else [], float(value))
            yield family


def metrics_text() -> tuple[bytes, str]:
    """The exposition of `/metrics`: stage gauges and every process's series."""
    registry = CollectorRegistry(auto_describe=False)
    path = os.environ.get(MULTIPROC_DIR_ENV)
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_DefaultRegistry())
    registry.register(StageCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _DefaultRegistry:
    """This process's own metrics (no multiprocess directory): the default registry's collect."""

    def collect(self):
        yield from REGISTRY.collect()
