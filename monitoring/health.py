"""Node health, computed in one place (DESIGN.md §12, docs/operations.md "Health model").

Every stage is judged from the progress and backlog stored in the database, against its own
cadence, never against one global threshold:

- feed: per stream, the age of the newest record against the stream's step (bar + poll
  interval, + one bar for candles, which are stored once closed); consecutive errors;
- predict: per active config, how late its next slot is and how many slots that is (against
  the config's interval and the predict worker's cadence); the share of models that answered
  the newest slot;
- score: the backlog of resolvable Inputs and the age of the oldest, against the score worker's
  cadence, the feed's step and the ground-truth grace;
- checkpoint: when the next period is due, and once it has ended what it waits for;
- worker: each worker's newest heartbeat against the cadence that worker announced.

`current_health()` is what every reader calls: `/healthz` (its level field), `/reports/health`,
the badge, the health page, `manage.py worker_health` and `/metrics`. It recomputes at most every
HEALTH_CACHE_SECONDS per process, so probes stay cheap and readers in one process agree.
"""

import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint
from checkpoints.selectors import Period, next_checkpoint_period, period_readiness
from coordinator_site.health import (
    AMBER,
    GREEN,
    RED,
    Check,
    NodeHealth,
    human_duration,
    summarise,
    worker_cadence_seconds,
)
from coordinator_site.models import WorkerHeartbeat
from feeds.dims import FeedDims, granularity_seconds
from feeds.models import FeedIngestionState
from feeds.selectors import stream_cadence
from predictions.choices import FailureReason, InputStatus, PredictionStatus
from predictions.models import LIVE_INPUTS, Input, Prediction, PredictionConfig

# The node's four stage workers: each must be beating. Other heartbeat names (one-off commands)
# are judged only while they run.
STAGE_WORKERS = ("run_feed", "run_predict", "run_score", "run_checkpoint")
# A worker that has not beaten within its cadence is late (amber); beyond 1.5 cadences it is
# taken for dead (red), so a stopped worker turns red well within twice its cadence.
WORKER_DEAD_CADENCES = 1.5
# Failing units in a row: amber from the first, red from this many.
WORKER_FAILING_RED = 5
# A feed whose newest record is older than this many steps is late, then stale.
FEED_LATE_STEPS, FEED_STALE_STEPS = 3, 10
# Models answering a slot: below this share amber; none at all red.
ANSWER_SHARE_AMBER = 0.5
# Model statuses that mean "did not answer" (the rest answered, whatever scoring made of it).
NOT_ANSWERED = (FailureReason.TIMEOUT, FailureReason.MODEL_ERROR, FailureReason.INVALID_OUTPUT)
EMPTY_NODE = "no worker heartbeat and no feed yet: start the workers (run_node)"


def _seconds(value: timedelta) -> float:
    return round(value.total_seconds(), 3)


# --- workers ------------------------------------------------------------------------------


def latest_heartbeats() -> QuerySet[WorkerHeartbeat]:
    """The newest heartbeat of each worker name, one query (index workerheartbeat_latest)."""
    newest = WorkerHeartbeat.objects.filter(name=OuterRef("name")).order_by("-last_beat_at", "-id").values("pk")[:1]
    return WorkerHeartbeat.objects.filter(pk=Subquery(newest)).order_by("name")


def beat_cadence(beat: WorkerHeartbeat | None) -> float:
    """The cadence a heartbeat row announced (rows written before cadences existed: the default)."""
    if beat is not None and beat.cadence_seconds:
        return beat.cadence_seconds
    return worker_cadence_seconds(5.0)


def worker_check(beat: WorkerHeartbeat, *, now: datetime) -> Check:
    """Green while it beats within its own cadence, amber when late or failing, red when gone."""
    cadence = beat_cadence(beat)
    age = now - beat.last_beat_at
    values = {"heartbeat_age_seconds": _seconds(age), "cadence_seconds": cadence, "pid": beat.pid, "up": 1}
    check = Check("worker", beat.name, GREEN, f"beating (expected every {human_duration(timedelta(seconds=cadence))})")
    check.values, check.row = values, beat
    if beat.stopped_at is not None:
        values["up"] = 0
        check.level, check.reason = RED, f"stopped {human_duration(now - beat.stopped_at)} ago"
    elif age.total_seconds() > cadence * WORKER_DEAD_CADENCES:
        values["up"] = 0
        check.level = RED
        check.reason = (
            f"no heartbeat for {human_duration(age)} (expected every {human_duration(timedelta(seconds=cadence))})"
        )
    elif age.total_seconds() > cadence:
        check.level = AMBER
        check.reason = (
            f"heartbeat late: {human_duration(age)} (expected every {human_duration(timedelta(seconds=cadence))})"
        )
    elif beat.consecutive_errors:
        first_line = (beat.last_error or "").splitlines()[0] if beat.last_error else "error"
        check.level = RED if beat.consecutive_errors >= WORKER_FAILING_RED else AMBER
        check.reason = f"{beat.consecutive_errors} unit(s) failed in a row: {first_line[:200]}"
    return check


def worker_checks(*, now: datetime) -> list[Check]:
    beats = {beat.name: beat for beat in latest_heartbeats()}
    checks = []
    for name in sorted(set(STAGE_WORKERS) | set(beats)):
        beat = beats.get(name)
        if beat is None:
            checks.append(Check("worker", name, RED, "no heartbeat yet: start it", {"up": 0}))
        elif name in STAGE_WORKERS or beat.stopped_at is None:
            checks.append(worker_check(beat, now=now))
    return checks


def live_process_counts(*, now: datetime) -> dict[str, int]:
    """Per worker name, the processes beating within 1.5 times their own cadence and not stopped."""
    rows = WorkerHeartbeat.objects.filter(stopped_at__isnull=True, last_beat_at__gte=now - timedelta(hours=1))
    counts: dict[str, int] = {}
    for name, last_beat_at, cadence in rows.values_list("name", "last_beat_at", "cadence_seconds"):
        if (now - last_beat_at).total_seconds() <= (cadence or worker_cadence_seconds(5.0)) * WORKER_DEAD_CADENCES:
            counts[name] = counts.get(name, 0) + 1
    return counts


# --- feed ---------------------------------------------------------------------------------


def feed_step(state: FeedIngestionState) -> timedelta:
    """How often a stream's newest record should move: its bar and its own cadence (streamed or
    polled, `feeds.selectors.stream_cadence`), plus a bar for candles."""
    try:
        bar = granularity_seconds(state.granularity)
        cadence = stream_cadence(FeedDims(state.source, state.subject, state.kind, state.granularity))
    except ValueError:
        bar, cadence = 60, timedelta(seconds=settings.FEED_POLL_SECONDS)
    # A candle is stored once closed and stamped with its open time: one bar of lag is normal.
    return timedelta(seconds=bar + (bar if state.kind == "candle" else 0)) + cadence


def feed_check(state: FeedIngestionState, *, now: datetime) -> Check:
    """Green while the newest record is within a few steps, amber when late or erroring, red stale."""
    check = Check("feed", state.dims_label, GREEN, "fresh", row=state)
    step = feed_step(state)
    check.values = {"consecutive_errors": state.consecutive_errors, "step_seconds": _seconds(step)}
    if state.last_event_ts is None:
        check.level, check.reason = RED, "nothing ingested yet"
        if state.last_error:
            check.reason += f"; last error: {state.last_error.splitlines()[0][:200]}"
        return check
    lag = now - state.last_event_ts
    check.values["lag_seconds"] = _seconds(lag)
    error = f"; {state.consecutive_errors} consecutive errors" if state.consecutive_errors else ""
    if lag > step * FEED_STALE_STEPS:
        check.level, check.reason = RED, f"stale: newest record {human_duration(lag)} old{error}"
    elif lag > step * FEED_LATE_STEPS:
        check.level, check.reason = AMBER, f"late: newest record {human_duration(lag)} old{error}"
    elif state.consecutive_errors:
        first_line = state.last_error.splitlines()[0][:200] if state.last_error else ""
        check.level, check.reason = AMBER, f"{state.consecutive_errors} consecutive errors: {first_line}"
    else:
        check.reason = f"fresh: newest record {human_duration(lag)} old"
    return check


def feed_checks(*, now: datetime) -> list[Check]:
    states = FeedIngestionState.objects.order_by("source", "subject", "kind", "granularity")
    return [feed_check(state, now=now) for state in states]


# --- predict ------------------------------------------------------------------------------


def predict_checks(*, now: datetime, cadence: float) -> list[Check]:
    """Per active config: is its next slot on time, and did the models answer the newest slot?"""
    newest_input = Input.objects.filter(config=OuterRef("pk")).order_by("-scheduled_for").values("pk")[:1]
    configs = list(
        PredictionConfig.objects.filter(active=True)
        .annotate(newest_input_id=Subquery(newest_input))
        .order_by("order", "scope_key")
    )
    input_ids = [c.newest_input_id for c in configs if c.newest_input_id is not None]
    answers: dict[int, dict[str, int]] = {}
    if input_ids:
        rows = (
            Prediction.objects.filter(input_id__in=input_ids)
            .values("input_id")
            .annotate(
                total=Count("id"),
                answered=Count("id", filter=~Q(status=PredictionStatus.ABSENT) & ~Q(failure_reason__in=NOT_ANSWERED)),
            )
            .order_by()
        )
        answers = {row["input_id"]: row for row in rows}
    return [_predict_check(c, answers.get(c.newest_input_id), now=now, cadence=cadence) for c in configs]


def _predict_check(config: PredictionConfig, answers: dict | None, *, now: datetime, cadence: float) -> Check:
    check = Check("predict", config.scope_key, GREEN, "", row=config)
    interval = config.interval_seconds
    if config.next_run_at is None:
        check.reason = "first slot not scheduled yet"
        return check
    delay = max(0.0, (now - config.next_run_at).total_seconds())
    missed = int(delay // interval)
    check.values = {"slot_delay_seconds": round(delay, 3), "slots_missed": missed, "interval_seconds": interval}
    total = answered = 0
    if answers:
        total, answered = answers["total"], answers["answered"]
        check.values.update(models_asked=total, models_answered=answered, answer_share=round(answered / total, 4))
    # Late: the due slot waits longer than the predict worker's cadence; red: two whole slots
    # (or two cadences, for configs faster than the worker) have gone by unserved.
    if delay > max(2 * interval, 2 * cadence):
        check.level = RED
        check.reason = f"{missed} slot(s) missed: next slot due {human_duration(timedelta(seconds=delay))} ago"
    elif delay > cadence:
        check.level = AMBER
        check.reason = f"slot late by {human_duration(timedelta(seconds=delay))}"
    elif total and answered == 0:
        check.level, check.reason = RED, f"no model answered the newest slot (0 of {total})"
    elif total and answered / total < ANSWER_SHARE_AMBER:
        check.level, check.reason = AMBER, f"only {answered} of {total} models answered the newest slot"
    elif not total and answers is not None:
        check.level, check.reason = AMBER, "no model was asked in the newest slot"
    else:
        share = f", {answered} of {total} models answered" if total else ""
        check.reason = f"on time{share}"
    return check


# --- score --------------------------------------------------------------------------------


def score_check(*, now: datetime, cadence: float, feed_step_seconds: float) -> Check:
    """The resolvable backlog: drained within a couple of cadences (plus the tape's step), and
    never older than the ground-truth grace, after which the score worker must have expired it."""
    backlog = Input.objects.filter(LIVE_INPUTS, status=InputStatus.RECEIVED, resolvable_at__lte=now).aggregate(
        n=Count("id"), oldest=Min("resolvable_at")
    )
    count, oldest = backlog["n"], backlog["oldest"]
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    check = Check("score", "backlog", GREEN, "no resolvable input waiting")
    check.values = {"backlog_inputs": count, "oldest_age_seconds": round(age, 3), "cadence_seconds": cadence}
    allowed = 2 * cadence + feed_step_seconds
    if count:
        what = f"{count} resolvable input(s), oldest {human_duration(timedelta(seconds=age))} past resolvable_at"
        if age > settings.GROUND_TRUTH_GRACE_SECONDS + allowed:
            check.level, check.reason = (
                RED,
                f"not progressing: {what} (ground-truth grace is {human_duration(timedelta(seconds=settings.GROUND_TRUTH_GRACE_SECONDS))})",
            )
        elif age > allowed:
            check.level, check.reason = AMBER, f"backlog: {what}"
        else:
            check.reason = f"keeping up: {what}"
    return check


# --- checkpoint ---------------------------------------------------------------------------


def checkpoint_readiness(period: Period, *, now: datetime) -> tuple[bool, str]:
    """Whether the period can be built and, if not, what it waits for.

    The one place health asks checkpoints (its readiness is being reworked to progress with
    "waiting for" reasons: adapt here only).
    """
    readiness = period_readiness(period, now=now)
    return readiness.ready, "; ".join(readiness.waiting) if readiness.waiting else readiness.reason


def checkpoint_check(*, now: datetime, cadence: float) -> Check:
    """Next period due in X; once ended, ready and built within a couple of cadences, or waiting
    (with what for) up to the grace; overdue beyond. Built but unconfirmed for a whole period: amber."""
    check = Check("checkpoint", "schedule", GREEN, "")
    unconfirmed = Checkpoint.objects.filter(status=CheckpointStatus.PENDING).aggregate(oldest=Min("created_at"))[
        "oldest"
    ]
    unconfirmed_age = (now - unconfirmed).total_seconds() if unconfirmed else 0.0
    period = next_checkpoint_period()
    if period is None:
        check.reason = "no data yet: the first period starts with the first input"
        check.values = {"unconfirmed_age_seconds": round(unconfirmed_age, 3), "unverified": 0}
        return check
    until_due = (period.end - now).total_seconds()
    check.values = {
        "seconds_until_due": round(until_due, 3),
        "waiting": 0,
        "unconfirmed_age_seconds": round(unconfirmed_age, 3),
        "period_end": period.end.isoformat(),
    }
    grace = settings.CHECKPOINT_GRACE_SECONDS
    if until_due > 0:
        check.reason = f"next checkpoint due in {human_duration(timedelta(seconds=until_due))}"
    else:
        ended = -until_due
        ready, why = checkpoint_readiness(period, now=now)
        ended_text = f"period ended {human_duration(timedelta(seconds=ended))} ago"
        if ready and ended > grace + 2 * cadence:
            check.level, check.reason = RED, f"overdue: {ended_text}, ready ({why}) but not built"
        elif ready:
            check.reason = f"{ended_text}, ready ({why}): building"
        else:
            check.values["waiting"] = 1
            level = AMBER if ended > grace + 2 * cadence else GREEN
            check.level, check.reason = level, f"{ended_text}, waiting for: {why}"
    failed = list(
        Checkpoint.objects.exclude(status=CheckpointStatus.VOID)
        .filter(meta__verification__ok=False)
        .order_by("period_start")
        .values_list("pk", flat=True)[:5]
    )
    check.values["unverified"] = len(failed)
    if failed:
        check.level = RED
        check.reason += (
            f"; checkpoint(s) {', '.join(map(str, failed))} failed verification (manage.py verify_checkpoint)"
        )
    if check.level == GREEN and unconfirmed and unconfirmed_age > settings.CHECKPOINT_INTERVAL_SECONDS:
        check.level = AMBER
        check.reason += f"; a built checkpoint unconfirmed for {human_duration(timedelta(seconds=unconfirmed_age))}"
    return check


# --- the node -----------------------------------------------------------------------------


def node_health(*, now: datetime) -> NodeHealth:
    """Every check of the node and its level (the worst), computed from the database now."""
    workers = worker_checks(now=now)
    cadences = {c.name: c.values.get("cadence_seconds") or worker_cadence_seconds(5.0) for c in workers}
    feeds = feed_checks(now=now)
    step = max((c.values["step_seconds"] for c in feeds), default=float(settings.FEED_POLL_SECONDS))
    checks = [
        *feeds,
        *predict_checks(now=now, cadence=cadences["run_predict"]),
        score_check(now=now, cadence=cadences["run_score"], feed_step_seconds=step),
        checkpoint_check(now=now, cadence=cadences["run_checkpoint"]),
        *workers,
    ]
    started = bool(feeds) or any(c.row is not None for c in workers)
    return summarise(checks if started else [], computed_at=now, empty_reason=EMPTY_NODE)


_lock = threading.Lock()
_cached: NodeHealth | None = None
_cached_at = 0.0


def current_health(*, max_age: float | None = None) -> NodeHealth:
    """The node's health, recomputed when older than `max_age` (HEALTH_CACHE_SECONDS) seconds.

    A database that cannot be read is itself a red verdict (never an exception to the caller).
    """
    global _cached, _cached_at
    ttl = settings.HEALTH_CACHE_SECONDS if max_age is None else max_age
    cached = _cached
    if cached is not None and time.monotonic() - _cached_at < ttl:
        return cached
    with _lock:
        if _cached is not None and _cached is not cached and time.monotonic() - _cached_at < ttl:
            return _cached
        now = timezone.now()
        try:
            health = node_health(now=now)
        except DatabaseError as exc:
            close_old_connections()
            health = NodeHealth(RED, f"database unreachable: {type(exc).__name__}", now, [], database="error")
            health.database = f"error: {type(exc).__name__}"
        _cached, _cached_at = health, time.monotonic()
        return health


def forget_health() -> None:
    """Drop the cached verdict (tests; and after a change the next read must see)."""
    global _cached, _cached_at
    with _lock:
        _cached, _cached_at = None, 0.0
