"""The score worker's writes (DESIGN.md §8): claim Inputs, resolve, score, snapshot, rank.

One unit of work (`score_batch`):

1. claim up to `batch` due Inputs with a conditional UPDATE and a lease (short transaction);
2. outside any transaction: resolve each Input's ground truth once (GROUND_TRUTH_RESOLVER; the
   default first asks each stream's provider, once and time-boxed, for prices the tape lacks);
3. one transaction writes everything of the batch: Input status and actuals, prediction
   statuses, one Score per prediction, snapshot upserts. Inputs whose lease was lost are
   skipped. The resolved and expired Inputs' not yet SCORED predictions are read in it and
   scored (SCORING_FUNCTION, each call isolated so one raising prediction fails alone;
   missing-answer policy for FAILED/ABSENT) while the database rewrites their statuses
   (Postgres pipeline mode); the Scores' foreign-key checks run while the snapshot deltas are
   computed. If that transaction fails, the Inputs
   are written one by one, so a poisoned Input is pushed back (attempts, next_attempt_at,
   last_error) and the rest of the batch still lands; each Input is scored only once.

`rebuild_leaderboard` ranks models on window metrics aggregated in SQL from the Score table.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import uuid4

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import BaseModel

from coordinator_site import wakeup
from coordinator_site.boundary import MAX_ABS_SCORE, clean_json, clean_number, escape_text
from coordinator_site.contract import get_callable, get_contract
from coordinator_site.exact import EXACT, exact_mean
from predictions.choices import ExpiryReason, FailureReason, InputStatus, PredictionStatus
from predictions.models import LIVE_INPUTS, Input, ParticipantModel, Prediction
from predictions.services import MODEL_REGISTRY_LOCK_KEY, hold_advisory_lock
from scoring.aggregation import merge_summaries, scope_summaries
from scoring.eligibility import apply_eligibility, eligibility_summary, rank_parts
from scoring.hashing import leaf_hash, snapshot_document
from scoring.models import Leaderboard, Score, Snapshot, SnapshotSeal
from scoring.policy import MissingPolicy, missing_policy
from scoring.postprocess import ScorePass, score_pass
from scoring.selectors import window_aggregates

log = logging.getLogger(__name__)

# An Input whose ground truth is not there yet is looked at again after half of how late it
# already is, within [NOT_YET_MIN_RETRY_SECONDS, NOT_YET_RETRY_SECONDS]: just past resolvable_at
# the next tape record is typically a source interval away (a stream ticks many times a second),
# so it is looked at again within a fraction of a second; an Input whose data is long overdue
# (a feed outage) backs off to one look every NOT_YET_RETRY_SECONDS, until the grace expires it.
NOT_YET_MIN_RETRY_SECONDS = 0.05
NOT_YET_RETRY_SECONDS = 10


def not_yet_retry_at(now: datetime, resolvable_at: datetime) -> datetime:
    """When an Input whose ground truth is not there yet is claimed again (no state: its lateness)."""
    late = (now - resolvable_at).total_seconds()
    return now + timedelta(seconds=min(max(late / 2, NOT_YET_MIN_RETRY_SECONDS), NOT_YET_RETRY_SECONDS))


# A poisoned Input (resolver or write raising) backs off exponentially up to the cap.
RETRY_BASE_SECONDS = 10
RETRY_MAX_SECONDS = 900
ID_CHUNK = 5000
DETAIL_MAX = 2000
# Score writes hold it shared, a checkpoint build (which seals) exclusively: a batch is written
# either wholly before a seal (and is in the checkpoint) or wholly after it (and sees the seal).
SEAL_LOCK_KEY = 0x5EA1


@dataclass
class BatchResult:
    """What one `score_batch` call did (the worker logs these counts)."""

    claimed: int = 0
    resolved: int = 0
    expired: int = 0
    deferred: int = 0
    errors: int = 0
    lost: int = 0
    scored: int = 0
    scoring_errors: int = 0
    penalised: int = 0
    poisoned: int = 0
    late: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.resolved or self.expired or self.poisoned)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class InputOutcome:
    """Everything decided for one claimed Input: resolved before the write transaction, scored during it."""

    input: Input
    kind: str  # resolved | expired | deferred | error
    actuals: dict[str, Any] | None = None
    error: str = ""
    expiry: str = ExpiryReason.NO_GROUND_TRUTH  # why, when kind is expired
    scores: list[ScoreRow] = field(default_factory=list)
    scored_ids: list[int] = field(default_factory=list)
    scoring_errors: list[tuple[int, str]] = field(default_factory=list)
    expired_ids: list[int] = field(default_factory=list)
    penalised: int = 0
    # Read and scored (or expired) in the write transaction, once: see `score_outcome`.
    ground_truth: BaseModel | None = None
    predictions: list[PredictionRow] | None = None
    pending: int = 0
    is_scored: bool = False


class PredictionRow(NamedTuple):
    """The fields of a prediction the score worker reads (a tuple: built once per prediction)."""

    id: int
    input_id: int
    model_id: int
    status: str
    failure_reason: str
    failure_detail: str
    output: Any
    performed_at: datetime
    scope_key: str


PREDICTION_FIELDS = list(PredictionRow._fields)
# SCORED predictions are never touched again: the worker reads only these.
OPEN_STATUSES = [str(s.value) for s in (PredictionStatus.PENDING, PredictionStatus.FAILED, PredictionStatus.ABSENT)]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# One encoder for every score result (json.dumps builds a new one per call when given options).
RESULT_ENCODER = json.JSONEncoder(allow_nan=False)


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


def _detail(exc: BaseException) -> str:
    """An exception as a storable diagnostic text (a scorer's message may hold NUL)."""
    return escape_text(f"{type(exc).__name__}: {exc}", max_chars=DETAIL_MAX)


def period_start_for(t: datetime, period_seconds: int | None = None) -> datetime:
    """Start of the aligned snapshot period [start, start + SNAPSHOT_PERIOD_SECONDS) holding t."""
    period = period_seconds or settings.SNAPSHOT_PERIOD_SECONDS
    seconds = math.floor(t.timestamp())
    return datetime.fromtimestamp(seconds - seconds % period, tz=UTC)


# --- 1. claim -----------------------------------------------------------------------------


def due_inputs_filter(now: datetime, *, tape_moved: bool = False) -> Q:
    """RECEIVED Inputs past resolvable_at, not backing off, lease free or expired. With
    `tape_moved` (new tape records were stored since the last look), also the Inputs only
    waiting for their ground truth's data (deferred, no failed attempt) before their retry time."""
    waited = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    if tape_moved:
        waited |= Q(attempts=0)
    return (
        Q(status=InputStatus.RECEIVED, resolvable_at__lte=now)
        & LIVE_INPUTS  # a tournament round's samples are scored by their round (tournament app)
        & waited
        & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
    )


def claim_inputs(
    *, worker: str, batch: int, now: datetime | None = None, tape_moved: bool = False
) -> tuple[str, list[Input]]:
    """Lease up to `batch` due Inputs (oldest resolvable_at first) to a fresh claim token.

    Candidates are read with FOR UPDATE SKIP LOCKED on Postgres (so concurrent workers take
    disjoint sets) and taken with a conditional UPDATE that re-checks every condition; on
    SQLite the IMMEDIATE transaction serialises claimers. Returns (token, claimed Inputs).
    """
    now = now or timezone.now()
    token = f"{worker}:{uuid4().hex[:12]}"[:128]
    due = due_inputs_filter(now, tape_moved=tape_moved)
    with transaction.atomic():
        ids = list(
            Input.objects.filter(due)
            .order_by("resolvable_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            return token, []
        Input.objects.filter(due, pk__in=ids).update(
            claimed_by=token, lease_until=now + timedelta(seconds=settings.SCORE_LEASE_SECONDS)
        )
    # raw_data (what the models were shown) can be large and scoring does not read it.
    return token, list(Input.objects.filter(claimed_by=token).defer("raw_data").order_by("resolvable_at", "id"))


# --- 2. resolve (no transaction open); scoring runs during the write ----------------------------


class ScoringContext:
    """The contract pieces one batch needs, looked up once."""

    def __init__(self, now: datetime) -> None:
        contract = get_contract()
        self.now = now
        self.output_type = contract.output_type
        self.ground_truth_type = contract.ground_truth_type
        self.score_type = contract.score_type
        # Per prediction: the validators themselves, without model_validate's Python wrapper.
        self.validate_output = contract.output_type.__pydantic_validator__.validate_python
        self.validate_score = contract.score_type.__pydantic_validator__.validate_python
        self.value_field = contract.aggregation.value_field
        self.direction = contract.aggregation.ranking_direction
        self.resolver = get_callable("GROUND_TRUTH_RESOLVER")
        # A resolver may offer `prepare_batch(inputs) -> resolver` to read the tape once per batch.
        self.resolve = self.resolver
        self.scorer = get_callable("SCORING_FUNCTION")
        self.aggregator = get_callable("MODEL_SCORE_AGGREGATOR")
        self.policy: MissingPolicy = missing_policy()
        self.score_pass: ScorePass = score_pass()
        # An emission split ranks each part on its own scopes: snapshots then keep per-scope sums.
        self.scope_sums = bool(contract.emission.split)
        self.grace = timedelta(seconds=settings.GROUND_TRUTH_GRACE_SECONDS)


def _validated_ground_truth(ctx: ScoringContext, raw: Any) -> tuple[dict[str, Any], BaseModel]:
    if isinstance(raw, BaseModel):
        raw = raw.model_dump(by_alias=True)
    typed = ctx.ground_truth_type.model_validate(raw)
    actuals = clean_json(typed.model_dump(mode="json", by_alias=True), field="ground truth")
    return actuals, typed


def score_prediction(ctx: ScoringContext, output: Any, ground_truth: BaseModel) -> tuple[float, dict[str, Any], str]:
    """(value, result, result as JSON) of one valid prediction; raises on any scorer error or invalid result."""
    prediction = ctx.validate_output(output)
    raw = ctx.scorer(prediction, ground_truth)
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    # The boundary: a value that can be summed safely, a result Postgres can store.
    result = clean_json(ctx.validate_score(raw).model_dump(mode="json"), field="score")
    value = clean_number(result.get(ctx.value_field), field=f"score {ctx.value_field}", max_abs=MAX_ABS_SCORE)
    return value, result, RESULT_ENCODER.encode(result)


@dataclass(slots=True)
class ScoreRow:
    """One Score to insert (plain data: building model instances is the slow part of a batch)."""

    prediction_id: int
    model_id: int
    input_id: int
    scope_key: str
    performed_at: datetime
    scored_at: datetime
    value: float | None
    result: dict[str, Any]
    success: bool
    failed_reason: str = ""
    result_json: str | None = None  # `result` already encoded, when the scorer path has it
    late: bool = False  # its snapshot period is sealed: stored, never merged


SCORE_COLUMNS = [f for f in ScoreRow.__dataclass_fields__ if f != "result_json"]


def _score_row(input_: Input, row: PredictionRow, ctx: ScoringContext, **fields: Any) -> ScoreRow:
    return ScoreRow(
        prediction_id=row.id,
        model_id=row.model_id,
        input_id=input_.pk,
        scope_key=row.scope_key,
        performed_at=row.performed_at,
        scored_at=ctx.now,
        **fields,
    )


def insert_scores(rows: list[ScoreRow]) -> None:
    """Insert Score rows: COPY on Postgres, bulk INSERT elsewhere."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        columns = ", ".join(SCORE_COLUMNS)
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {Score._meta.db_table} ({columns}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(
                        (
                            r.prediction_id,
                            r.model_id,
                            r.input_id,
                            r.scope_key,
                            r.performed_at,
                            r.scored_at,
                            r.value,
                            r.result_json or json.dumps(r.result),
                            r.success,
                            r.failed_reason,
                            r.late,
                        )
                    )
        return
    Score.objects.bulk_create([Score(**{c: getattr(r, c) for c in SCORE_COLUMNS}) for r in rows], batch_size=500)


def assess_input(ctx: ScoringContext, input_: Input) -> InputOutcome:
    """Resolve one Input (its predictions are read and scored in the write); never raises."""
    past_grace = ctx.now >= input_.resolvable_at + ctx.grace
    try:
        raw = ctx.resolve(input_)
        if raw is None:
            return (
                InputOutcome(input_, "expired", error="no ground truth")
                if past_grace
                else InputOutcome(input_, "deferred")
            )
        actuals, ground_truth = _validated_ground_truth(ctx, raw)
    except Exception as exc:
        if past_grace:
            return InputOutcome(input_, "expired", error=f"ground truth failed: {_detail(exc)}")
        if input_.attempts + 1 >= settings.SCORE_MAX_ATTEMPTS:
            return poisoned_outcome(input_, _detail(exc))
        return InputOutcome(input_, "error", error=_detail(exc))
    return InputOutcome(input_, "resolved", actuals=actuals, ground_truth=ground_truth)


def poisoned_outcome(input_: Input, error: str) -> InputOutcome:
    """The last failed attempt: EXPIRED with reason POISONED, its error kept; the predictions are
    FAILED INPUT_POISONED without a value (the fault is the node's, not the models')."""
    why = escape_text(f"POISONED after {input_.attempts + 1} attempts: {error}", max_chars=DETAIL_MAX)
    return InputOutcome(input_, "expired", error=why, expiry=ExpiryReason.POISONED)


def score_outcome(ctx: ScoringContext, outcome: InputOutcome) -> None:
    """Score a resolved Input's predictions in memory (once) and apply the missing-answer policy,
    or fail an expired one's; never raises."""
    if outcome.is_scored or outcome.predictions is None:
        return
    outcome.is_scored = True
    if outcome.kind == "expired":
        expire_input(ctx, outcome)
        return
    input_, ground_truth = outcome.input, outcome.ground_truth
    values: list[float] = []
    missing: list[tuple[PredictionRow, str, str, str]] = []  # row, status, reason, detail
    for row in outcome.predictions:
        if row.status == PredictionStatus.PENDING:
            try:
                value, result, text = score_prediction(ctx, row.output, ground_truth)
            except Exception as exc:
                detail = _detail(exc)
                outcome.scoring_errors.append((row.id, detail))
                missing.append((row, PredictionStatus.FAILED, FailureReason.SCORING_ERROR, detail))
                continue
            values.append(value)
            outcome.scored_ids.append(row.id)
            outcome.scores.append(
                ScoreRow(
                    row.id,
                    row.model_id,
                    input_.pk,
                    row.scope_key,
                    row.performed_at,
                    ctx.now,
                    value,
                    result,
                    True,
                    "",
                    text,
                )
            )
        elif row.status in (PredictionStatus.FAILED, PredictionStatus.ABSENT):
            reason = row.failure_reason or row.status
            missing.append((row, row.status, reason, row.failure_detail))
    audit: dict[str, Any] = {}
    if ctx.score_pass.active:
        values, audit = apply_pass(ctx, outcome.scores, values)
    penalty = ctx.policy.penalty(values, direction=ctx.direction)
    if penalty is not None and ctx.score_pass.mode == "normalise" and ctx.policy.mode == "worst":
        penalty = 0.0  # the bottom of the normalised scale, even when every answer tied at 1
    for row, status, reason, detail in missing:
        outcome.penalised += penalty is not None
        result = {"status": status, "detail": detail[:DETAIL_MAX], "policy": ctx.policy.mode, **audit}
        outcome.scores.append(
            _score_row(input_, row, ctx, value=penalty, result=result, success=False, failed_reason=reason)
        )


def apply_pass(ctx: ScoringContext, scores: list[ScoreRow], raw: list[float]) -> tuple[list[float], dict[str, Any]]:
    """The score pass over one Input's successful scores (population = the Input's answered
    predictions, before any missing-answer penalty): each Score gets the passed value, its
    result keeps the scorer's value as `raw_value`. Returns the passed values and what a
    missing answer's result records (`raw_value`: the policy's value on the raw scores)."""
    passed = ctx.score_pass.apply(raw)
    for score, raw_value, value in zip(scores, raw, passed, strict=True):
        result = {**score.result, ctx.value_field: value, "raw_value": raw_value, "score_pass": ctx.score_pass.mode}
        score.value, score.result, score.result_json = value, result, RESULT_ENCODER.encode(result)
    raw_penalty = ctx.policy.penalty(raw, direction=ctx.score_pass.raw_direction)
    return passed, {"raw_value": raw_penalty, "score_pass": ctx.score_pass.mode}


def expire_input(ctx: ScoringContext, outcome: InputOutcome) -> None:
    """No ground truth within the grace period: predictions FAILED NO_GROUND_TRUTH, no values."""
    input_, why = outcome.input, outcome.error
    for row in outcome.predictions or []:
        if row.status == PredictionStatus.PENDING:
            outcome.expired_ids.append(row.id)
            status, reason, detail = PredictionStatus.FAILED, _expired_reason(outcome), why
        elif row.status in (PredictionStatus.FAILED, PredictionStatus.ABSENT):
            status, reason, detail = row.status, row.failure_reason or row.status, row.failure_detail
        else:
            continue
        result = {"status": status, "detail": detail[:DETAIL_MAX], "policy": outcome.expiry.lower()}
        outcome.scores.append(
            _score_row(input_, row, ctx, value=None, result=result, success=False, failed_reason=reason)
        )


def _expired_reason(outcome: InputOutcome) -> str:
    if outcome.expiry == ExpiryReason.POISONED:
        return FailureReason.INPUT_POISONED
    return FailureReason.NO_GROUND_TRUTH


# --- 3. score and write (one transaction per batch) --------------------------------------------


def _final_status(score: ScoreRow, outcome: InputOutcome) -> str:
    if score.success:
        return PredictionStatus.SCORED
    return score.result.get("status", PredictionStatus.FAILED)


SnapshotDelta = tuple[int, dict[str, int], dict[str, Any]]  # predictions, counts by status, summary


def summarise_snapshots(ctx: ScoringContext, outcomes: list[InputOutcome]) -> dict[tuple[int, datetime], SnapshotDelta]:
    """What the batch adds to each (model, period start) snapshot, computed in memory."""
    groups: dict[tuple[int, datetime], list[dict[str, Any]]] = defaultdict(list)
    periods: dict[datetime, datetime] = {}  # performed_at -> period start (an Input's predictions share it)
    for outcome in outcomes:
        for score in outcome.scores:
            if score.late:
                continue
            start = periods.get(score.performed_at)
            if start is None:
                start = periods[score.performed_at] = period_start_for(score.performed_at)
            groups[(score.model_id, start)].append(
                {
                    "status": _final_status(score, outcome),
                    "failure_reason": score.failed_reason,
                    "success": score.success,
                    "value": score.value,
                    "result": score.result if score.success else {},
                    "scope_key": score.scope_key,
                }
            )
    deltas = {}
    for key, items in groups.items():
        counts: dict[str, int] = {}
        for item in items:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        summary = ctx.aggregator(items)
        if ctx.scope_sums:
            summary = {**summary, "by_scope": scope_summaries(items)}
        deltas[key] = (len(items), counts, summary)
    return deltas


@dataclass
class _SnapshotRow:
    """The columns of a locked snapshot that a merge reads and writes (what `snapshot_document` reads)."""

    pk: int
    model_id: int
    period_start: datetime
    period_end: datetime
    prediction_count: int
    counts: dict[str, int]
    result_summary: dict[str, Any]
    model: Any  # anything with `.model_id` (the public id)


class _PublicId(NamedTuple):
    model_id: str


def _lock_snapshots(keys: list[tuple[int, datetime]], *, period: timedelta, now: datetime) -> list[_SnapshotRow]:
    """The (model, period start) snapshots of `keys` (sorted), created when missing, locked in key order.

    Postgres: two statements over arrays, exactly the batch's rows, no model instances. Elsewhere
    the ORM, on a rectangle of (models x periods): rows outside the batch's keys are locked too
    (same order everywhere, so no deadlock) but left untouched.
    """
    table = Snapshot._meta.db_table
    if connection.vendor == "postgresql":
        model_pks, starts = [m for m, _ in keys], [t for _, t in keys]
        with _cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (model_id, period_start, period_end, prediction_count, counts, "  # noqa: S608
                "result_summary, content_hash, created_at, updated_at) "
                "SELECT v.m, v.s, v.s + %b::interval, 0, '{}', '{}', '', %b, %b "
                "FROM unnest(%b::bigint[], %b::timestamptz[]) AS v(m, s) ORDER BY v.m, v.s "
                "ON CONFLICT (model_id, period_start) DO NOTHING",
                [period, now, now, model_pks, starts],
            )
            cursor.execute(
                f"SELECT s.id, s.model_id, s.period_start, s.period_end, s.prediction_count, s.counts::text, "  # noqa: S608
                f"s.result_summary::text, m.model_id FROM {table} s "
                "JOIN unnest(%b::bigint[], %b::timestamptz[]) AS v(m, s) ON s.model_id = v.m AND s.period_start = v.s "
                f"JOIN {ParticipantModel._meta.db_table} m ON m.id = s.model_id "
                "ORDER BY s.model_id, s.period_start FOR UPDATE OF s",
                [model_pks, starts],
            )
            return [
                _SnapshotRow(pk, m, start, end, n, json.loads(counts), json.loads(summary), _PublicId(public))
                for pk, m, start, end, n, counts, summary, public in cursor.fetchall()
            ]
    wanted = set(keys)
    Snapshot.objects.bulk_create(
        [Snapshot(model_id=m, period_start=t, period_end=t + period) for m, t in keys], ignore_conflicts=True
    )
    return [
        _SnapshotRow(
            r.pk, r.model_id, r.period_start, r.period_end, r.prediction_count, r.counts, r.result_summary, r.model
        )
        for r in Snapshot.objects.filter(model_id__in={m for m, _ in keys}, period_start__in={t for _, t in keys})
        .select_related("model")
        .select_for_update(of=("self",))
        .order_by("model_id", "period_start")
        if (r.model_id, r.period_start) in wanted
    ]


def upsert_snapshots(ctx: ScoringContext, groups: dict[tuple[int, datetime], SnapshotDelta]) -> int:
    """Merge the batch's deltas into their (model, period) snapshots; returns rows touched.

    Missing rows are inserted first (ON CONFLICT DO NOTHING, in key order), then the rows are
    locked in key order and merged, so concurrent workers neither lose nor double updates.
    """
    if not groups:
        return 0
    rows = _lock_snapshots(sorted(groups), period=timedelta(seconds=settings.SNAPSHOT_PERIOD_SECONDS), now=ctx.now)
    updates = []
    for row in rows:
        added, added_counts, summary = groups[(row.model_id, row.period_start)]
        row.prediction_count += added
        counts = dict(row.counts or {})
        for status, n in added_counts.items():
            counts[status] = counts.get(status, 0) + n
        row.counts = counts
        row.result_summary = merge_summaries(row.result_summary, summary, value_field=ctx.value_field)
        content_hash = leaf_hash(snapshot_document(row))
        updates.append(
            (row.prediction_count, json.dumps(counts), json.dumps(row.result_summary), content_hash, ctx.now, row.pk)
        )
    update_by_id(
        Snapshot._meta.db_table,
        {
            "prediction_count": "integer",
            "counts": "jsonb",
            "result_summary": "jsonb",
            "content_hash": "text",
            "updated_at": "timestamptz",
        },
        updates,
    )
    return len(rows)


def write_outcomes(ctx: ScoringContext, outcomes: list[InputOutcome], *, token: str) -> list[InputOutcome]:
    """Write a batch in one transaction; returns the outcomes written (lease still held)."""
    with transaction.atomic():
        hold_seal_lock(shared=True)
        ids = [o.input.pk for o in outcomes]
        # Locks the claimed rows: a worker that took over an expired lease waits, then sees them done.
        owned = set(
            Input.objects.filter(pk__in=ids, claimed_by=token, status=InputStatus.RECEIVED)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        kept = [o for o in outcomes if o.input.pk in owned]
        updates = []
        for o in kept:
            inp = o.input
            if o.kind in ("resolved", "expired"):
                status = InputStatus.RESOLVED if o.kind == "resolved" else InputStatus.EXPIRED
                actuals = json.dumps(o.actuals) if o.actuals is not None else None
                expiry = o.expiry if o.kind == "expired" else ""
                attempts = inp.attempts + (o.expiry == ExpiryReason.POISONED and o.kind == "expired")
                updates.append((status, actuals, ctx.now, o.error, attempts, inp.next_attempt_at, expiry, inp.pk))
            elif o.kind == "deferred":
                retry = not_yet_retry_at(ctx.now, inp.resolvable_at)
                updates.append((InputStatus.RECEIVED, None, None, inp.last_error, inp.attempts, retry, "", inp.pk))
            else:
                attempts = inp.attempts + 1
                retry = ctx.now + backoff(attempts)
                updates.append((InputStatus.RECEIVED, None, None, o.error, attempts, retry, "", inp.pk))
        update_by_id(
            Input._meta.db_table,
            {
                "status": "text",
                "actuals": "jsonb",
                "resolved_at": "timestamptz",
                "last_error": "text",
                "attempts": "integer",
                "next_attempt_at": "timestamptz",
                "expiry_reason": "text",
            },
            updates,
            also="claimed_by = '', lease_until = NULL",
        )
        done = [o for o in kept if o.kind in ("resolved", "expired")]
        resolved = [o for o in done if o.kind == "resolved"]
        expired = [o for o in done if o.kind == "expired"]
        unread = [o for o in done if o.predictions is None]
        # The predictions are read first; the status updates go out next (pipelined on
        # Postgres: not waited for), so the database rewrites the prediction rows while the
        # rows read are converted and scored here. Every PENDING prediction of a resolved
        # Input becomes SCORED, those of an expired one FAILED (counts checked against the
        # PENDING predictions read); the few whose scoring raised are turned FAILED just after.
        rows_of = read_predictions([o.input.pk for o in unread]) if unread else None
        poisoned = [o for o in expired if o.expiry == ExpiryReason.POISONED]
        expired = [o for o in expired if o.expiry != ExpiryReason.POISONED]
        with _cursor() as to_scored, _cursor() as to_failed, _cursor() as to_poisoned:
            with _pipeline():
                _send_mark(to_scored, resolved, PredictionStatus.SCORED)
                _send_mark(
                    to_failed,
                    expired,
                    PredictionStatus.FAILED,
                    failure_reason=FailureReason.NO_GROUND_TRUTH,
                    failure_detail=f"no ground truth {settings.GROUND_TRUTH_GRACE_SECONDS}s after resolvable_at",
                )
                _send_mark(
                    to_poisoned,
                    poisoned,
                    PredictionStatus.FAILED,
                    failure_reason=FailureReason.INPUT_POISONED,
                    failure_detail="the Input could not be processed (see its last_error); not held against the model",
                )
                if rows_of is not None:
                    grouped = rows_of()
                    for o in unread:
                        o.predictions = grouped.get(o.input.pk, [])
                        o.pending = sum(1 for row in o.predictions if row.status == PredictionStatus.PENDING)
                for o in done:
                    score_outcome(ctx, o)
            _expect(to_scored, resolved, PredictionStatus.SCORED)
            _expect(to_failed, expired, PredictionStatus.FAILED)
            _expect(to_poisoned, poisoned, PredictionStatus.FAILED)
        for o in resolved:
            for pk, detail in o.scoring_errors:
                changed = Prediction.objects.filter(pk=pk, status=PredictionStatus.SCORED).update(
                    status=PredictionStatus.FAILED, failure_reason=FailureReason.SCORING_ERROR, failure_detail=detail
                )
                if changed != 1:
                    raise RuntimeError(f"prediction {pk}: expected to turn SCORED into FAILED, changed {changed}")
        flag_late_scores([s for o in done for s in o.scores])
        insert_scores([s for o in done for s in o.scores])
        with _cursor() as cursor, _pipeline():
            if connection.vendor == "postgresql":
                # The new Scores' deferred foreign-key checks run now, while the snapshot
                # deltas are computed here, rather than at COMMIT with nothing else to do
                # (then back to deferred, as Django's check_constraints() does).
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            deltas = summarise_snapshots(ctx, done)
        upsert_snapshots(ctx, deltas)
        if done:
            wakeup.notify(wakeup.SCORES)  # run_checkpoint: a period may have settled
    return kept


def hold_seal_lock(*, shared: bool) -> None:
    """Take SEAL_LOCK_KEY for the current transaction (PostgreSQL; SQLite serialises writers)."""
    hold_advisory_lock(SEAL_LOCK_KEY, shared=shared)


def flag_late_scores(scores: list[ScoreRow]) -> int:
    """Flag the scores whose snapshot period is sealed (only after a forced checkpoint build):
    they are stored and reported, never merged into the sealed snapshot. Returns how many."""
    if not scores:
        return 0
    first = min(s.performed_at for s in scores)
    last = max(s.performed_at for s in scores)
    seals = list(
        SnapshotSeal.objects.filter(period_start__lte=last, period_end__gt=period_start_for(first)).values_list(
            "period_start", "period_end"
        )
    )
    if not seals:
        return 0
    late = 0
    for score in scores:
        start = period_start_for(score.performed_at)
        if any(a <= start < b for a, b in seals):
            score.late = True
            late += 1
    return late


def _pipeline() -> AbstractContextManager:
    """Postgres pipeline mode: statements are sent without waiting for their results."""
    if connection.vendor == "postgresql":
        return connection.connection.pipeline()
    return nullcontext()


def _send_mark(cursor, outcomes: list[InputOutcome], status: str, **fields: str) -> None:
    """PENDING -> status for the predictions of these Inputs; the count is checked by `_expect`."""
    if not outcomes:
        return
    sets = "".join(f", {name} = %s" for name in fields)
    match, ids = _id_in("input_id", [o.input.pk for o in outcomes])
    cursor.execute(
        f"UPDATE {Prediction._meta.db_table} SET status = %s{sets} WHERE status = %s AND {match}",  # noqa: S608
        [status, *fields.values(), PredictionStatus.PENDING.value, *ids],
    )


def _expect(cursor, outcomes: list[InputOutcome], status: str) -> None:
    """Any other count than the PENDING predictions read means the batch is stale: roll back."""
    expected = sum(o.pending for o in outcomes)
    if outcomes and cursor.rowcount != expected:
        raise RuntimeError(f"expected {expected} PENDING predictions to move to {status}, moved {cursor.rowcount}")


def backoff(attempts: int) -> timedelta:
    """Delay before a poisoned Input is tried again: 10 s, 20 s, 40 s ... capped at 15 min."""
    return timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)))


def record_input_failure(*, ctx: ScoringContext, input_: Input, token: str, error: str, now: datetime) -> str:
    """After its write failed: push the Input back with backoff (only if we still hold it), or,
    on its last attempt, expire it as POISONED. Returns the outcome kind written."""
    if input_.attempts + 1 >= settings.SCORE_MAX_ATTEMPTS:
        outcome = poisoned_outcome(input_, error)
        try:
            if write_outcomes(ctx, [outcome], token=token):
                return "expired"
        except Exception:
            log.warning("input %s: the POISONED expiry could not be written either", input_.pk, exc_info=True)
            # Last resort without Scores: the Input and its open predictions still end.
            with transaction.atomic():
                if Input.objects.filter(pk=input_.pk, claimed_by=token, status=InputStatus.RECEIVED).update(
                    status=InputStatus.EXPIRED,
                    expiry_reason=ExpiryReason.POISONED,
                    attempts=input_.attempts + 1,
                    last_error=outcome.error,
                    resolved_at=now,
                    claimed_by="",
                    lease_until=None,
                ):
                    Prediction.objects.filter(input_id=input_.pk, status=PredictionStatus.PENDING).update(
                        status=PredictionStatus.FAILED,
                        failure_reason=FailureReason.INPUT_POISONED,
                        failure_detail=outcome.error,
                    )
                    return "expired"
        return "lost"
    Input.objects.filter(pk=input_.pk, claimed_by=token, status=InputStatus.RECEIVED).update(
        attempts=input_.attempts + 1,
        last_error=error[:DETAIL_MAX],
        next_attempt_at=now + backoff(input_.attempts + 1),
        claimed_by="",
        lease_until=None,
    )
    return "error"


def _cursor():
    """A cursor for the bulk statements: on Postgres a plain psycopg one (server-side binding,
    arrays sent in binary), which skips Django's per-query wrapping and literal quoting."""
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        return psycopg.Cursor(connection.connection)
    return connection.cursor()


def _id_in(column: str, ids: list[int]) -> tuple[str, list[Any]]:
    """`column IN ids` as SQL and parameters (one array parameter on Postgres)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%b::bigint[])", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def read_predictions(input_ids: list[int]) -> Callable[[], dict[int, list[PredictionRow]]]:
    """Read the not yet SCORED predictions of these Inputs; returns the function that gives them
    grouped by Input (id order). On Postgres the query runs now (a plain cursor: the ORM's per-row
    converters cost more than the query) and the rows are converted when asked for, which may
    be while later statements run in pipeline mode; elsewhere they are all read now."""
    if connection.vendor != "postgresql":
        grouped = load_predictions(input_ids)
        return lambda: grouped
    # performed_at comes as epoch microseconds, turned into one datetime per distinct value.
    columns = ", ".join(PREDICTION_FIELDS).replace(
        "performed_at", "(extract(epoch FROM performed_at) * 1000000)::bigint"
    )
    cursor = _cursor()
    cursor.execute(
        f"SELECT {columns} FROM {Prediction._meta.db_table} "  # noqa: S608
        "WHERE input_id = ANY(%b::bigint[]) AND status = ANY(%b::text[]) ORDER BY id",
        [input_ids, OPEN_STATUSES],
    )

    def rows() -> dict[int, list[PredictionRow]]:
        grouped: dict[int, list[PredictionRow]] = defaultdict(list)
        times: dict[int, datetime] = {}
        with cursor:
            for pk, i, m, st, reason, detail, out, us, sc in cursor.fetchall():
                at = times.get(us)
                if at is None:
                    at = times[us] = EPOCH + timedelta(microseconds=us)
                output = None if out is None else json.loads(out)
                grouped[i].append(PredictionRow(pk, i, m, st, reason, detail, output, at, sc))
        return grouped

    return rows


def load_predictions(input_ids: list[int]) -> dict[int, list[PredictionRow]]:
    """The not yet SCORED predictions of the given Inputs, grouped by Input (id order), through
    the ORM: `read_predictions` on backends other than Postgres."""
    grouped: dict[int, list[PredictionRow]] = defaultdict(list)
    for chunk in _chunks(input_ids):
        query = Prediction.objects.filter(input_id__in=chunk, status__in=OPEN_STATUSES).order_by("id")
        for values in query.values_list(*PREDICTION_FIELDS):
            row = PredictionRow._make(values)
            grouped[row.input_id].append(row)
    return grouped


def update_by_id(table: str, columns: dict[str, str], rows: list[tuple], *, also: str = "") -> None:
    """`UPDATE table SET column = value, ... [, also] WHERE id = ...` for many rows.

    `columns` maps each column to its Postgres type; each row holds their values, then the id.
    Postgres: one statement over unnest()ed arrays; elsewhere one statement per row.
    """
    if not rows:
        return
    names = list(columns)
    extra = f", {also}" if also else ""
    with _cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%b::{columns[n]}[]" for n in names)
            cursor.execute(
                f"UPDATE {table} AS t SET {', '.join(f'{n} = v.{n}' for n in names)}{extra} "  # noqa: S608
                f"FROM unnest({arrays}, %b::bigint[]) AS v({', '.join(names)}, id) WHERE t.id = v.id",
                [list(column) for column in zip(*rows, strict=True)],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET {', '.join(f'{n} = %s' for n in names)}{extra} WHERE id = %s",  # noqa: S608
                rows,
            )


def score_batch(*, worker: str, batch: int, now: datetime | None = None, tape_moved: bool = False) -> BatchResult:
    """One unit of the score worker: claim, resolve, score and write up to `batch` Inputs."""
    now = now or timezone.now()
    ctx = ScoringContext(now)
    token, inputs = claim_inputs(worker=worker, batch=batch, now=now, tape_moved=tape_moved)
    result = BatchResult(claimed=len(inputs))
    if not inputs:
        return result
    prepare = getattr(ctx.resolver, "prepare_batch", None)
    if prepare is not None:
        try:
            ctx.resolve = prepare(inputs)
        except Exception:
            log.warning("batch ground-truth preload failed; resolving Inputs one by one", exc_info=True)
    outcomes = [assess_input(ctx, i) for i in inputs]
    try:
        written = write_outcomes(ctx, outcomes, token=token)
    except Exception:
        log.warning("score batch of %s inputs failed; writing them one by one", len(outcomes), exc_info=True)
        written = []
        for outcome in outcomes:
            try:
                written += write_outcomes(ctx, [outcome], token=token)
            except Exception as exc:
                log.warning("input %s could not be written; backing off", outcome.input.pk, exc_info=True)
                kind = record_input_failure(ctx=ctx, input_=outcome.input, token=token, error=_detail(exc), now=now)
                if kind == "expired":
                    result.poisoned += 1
                elif kind == "error":
                    result.errors += 1
    result.lost = len(outcomes) - len(written) - result.errors - result.poisoned
    for o in written:
        if o.kind == "resolved":
            result.resolved += 1
        elif o.kind == "expired" and o.expiry == ExpiryReason.POISONED:
            result.poisoned += 1
        elif o.kind == "expired":
            result.expired += 1
        elif o.kind == "deferred":
            result.deferred += 1
        else:
            result.errors += 1
        result.scored += len(o.scored_ids)
        result.scoring_errors += len(o.scoring_errors)
        result.penalised += o.penalised
        result.late += sum(1 for score in o.scores if score.late)
    return result


# --- leaderboard -------------------------------------------------------------------------------


def _model_entry(model: ParticipantModel) -> dict[str, Any]:
    return {
        "model_id": str(model.model_id),
        "model_name": model.name,
        "cruncher_id": model.cruncher_id,
        "cruncher_name": model.cruncher_name,
        "is_benchmark": model.is_benchmark,
    }


def _part_stats(per_scope: dict, model_pk: int, *, parts: list, key: str) -> dict[str, dict[str, Any]]:
    """Per split part: the ranking window's exact mean and scored count over the part's scopes."""
    result = {}
    for part in parts:
        total, n, answered = 0, 0, 0
        for scope in part.scope_keys:
            stats = per_scope.get((model_pk, scope), {}).get(key)
            if stats:
                total = EXACT.add(total, stats["sum"])
                n += stats["n"]
                answered += stats["answered"]
        result[part.name] = {"value": exact_mean(total, n) if n else None, "scored_count": answered}
    return result


def rebuild_leaderboard(*, now: datetime | None = None) -> Leaderboard:
    """Rank every model on the contract's windows and store a new Leaderboard row.

    Window metrics are count-weighted means of Score.value over scores performed in
    [now - hours, now], aggregated in SQL (one GROUP BY model, scope); coverage and counts are
    those of the ranking window. Also updates Model.overall_score / scores_by_scope and prunes
    old rows to LEADERBOARD_HISTORY.
    """
    contract = get_contract()
    aggregation = contract.aggregation
    parts = contract.emission.split
    ranker = get_callable("LEADERBOARD_RANKER")
    with transaction.atomic():
        # Serialises rebuilds, and orders them against new models' registration.
        hold_advisory_lock(MODEL_REGISTRY_LOCK_KEY, shared=False)
        now = now or timezone.now()
        starts = {name: now - timedelta(hours=w.hours) for name, w in aggregation.windows.items()}
        per_scope = window_aggregates(starts=starts, end=now, count_windows={aggregation.ranking_key})
        per_model: dict[int, dict[str, dict[str, Any]]] = {}
        for (model_pk, _scope), stats in per_scope.items():
            totals = per_model.setdefault(model_pk, {name: defaultdict(int) for name in starts})
            for name, window_stats in stats.items():
                for key, value in window_stats.items():
                    # sums are exact Decimals: added in the exact context, never rounded
                    totals[name][key] = (
                        EXACT.add(totals[name][key], value) if key == "sum" else totals[name][key] + value
                    )
        models = {
            m.pk: m
            for m in ParticipantModel.objects.filter(Q(status="ACTIVE") | Q(pk__in=list(per_model))).order_by("pk")
        }
        key = aggregation.ranking_key
        entries = []
        for model_pk, model in models.items():
            stats = per_model.get(model_pk, {})
            ranking_stats = stats.get(key, {})
            asked, answered = int(ranking_stats.get("asked", 0)), int(ranking_stats.get("answered", 0))
            entries.append(
                {
                    **_model_entry(model),
                    "metrics": {name: _mean(stats.get(name)) for name in starts},
                    "coverage": answered / asked if asked else None,
                    "prediction_count": asked,
                    "scored_count": answered,
                }
            )
        ranked = apply_eligibility(ranker(entries, aggregation), contract.eligibility)
        if parts:
            for entry, model in zip(entries, models.values(), strict=True):
                entry["part_stats"] = _part_stats(per_scope, model.pk, parts=parts, key=key)
            by_part = rank_parts(
                entries, parts=parts, aggregation=aggregation, ranker=ranker, rules=contract.eligibility
            )
            for entry in ranked:
                entry.pop("part_stats", None)
                entry["parts"] = by_part[entry["model_id"]]
        computed_at = now.isoformat()
        board = Leaderboard.objects.create(
            created_at=now,
            entries=ranked,
            meta={
                "windows": {
                    name: {"hours": aggregation.windows[name].hours, "start": start.isoformat(), "end": computed_at}
                    for name, start in starts.items()
                },
                "ranking_key": key,
                "ranking_direction": aggregation.ranking_direction,
                "computed_at": computed_at,
                "eligibility": {**contract.eligibility.model_dump(mode="json"), **eligibility_summary(ranked)},
                "split": [part.model_dump(mode="json") for part in parts],
            },
        )
        by_model_id = {entry["model_id"]: entry for entry in ranked}
        for model_pk, model in models.items():
            entry = by_model_id[str(model.model_id)]
            model.overall_score = {
                "metrics": entry["metrics"],
                "rank": entry["rank"],
                "eligible": entry["eligible"],
                "ineligible_reasons": entry["ineligible_reasons"],
                "coverage": entry["coverage"],
                "prediction_count": entry["prediction_count"],
                "scored_count": entry["scored_count"],
                "computed_at": computed_at,
            }
            model.scores_by_scope = {
                scope: {
                    "metrics": {name: _mean(s.get(name)) for name in starts},
                    "coverage": _ratio(s.get(key, {}).get("answered", 0), s.get(key, {}).get("asked", 0)),
                    "prediction_count": int(s.get(key, {}).get("asked", 0)),
                    "scored_count": int(s.get(key, {}).get("answered", 0)),
                }
                for (pk, scope), s in sorted(per_scope.items())
                if pk == model_pk
            }
        ParticipantModel.objects.bulk_update(list(models.values()), ["overall_score", "scores_by_scope"])
        keep = list(
            Leaderboard.objects.order_by("-created_at", "-id").values_list("id", flat=True)[
                : settings.LEADERBOARD_HISTORY
            ]
        )
        Leaderboard.objects.exclude(id__in=keep).delete()
    return board


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _mean(stats: dict[str, Any] | None) -> float | None:
    """The window mean from its exact sum and count (rounded once: the same scores give the
    same value here and in a checkpoint)."""
    if not stats:
        return None
    return exact_mean(stats["sum"], stats["n"])
