"""Tournament rounds (docs/tournament.md): open, infer, upload ground truth, score, re-score, cancel.

A round is a fixed list of samples (sample_id, features, part). Its samples are Inputs of its own
inactive PredictionConfig, unique on (config, sample_id); every model answers each sample once,
as an ordinary Prediction of that Input, so every answer is found by (round, sample_id, model) and
never by its position in a list. Ground truth is uploaded later, keyed by sample_id: a sample
without truth, or a truth for no sample, is reported and never shifts the other pairings.

Two worker units, registered in `TournamentConfig.ready` (coordinator_site/units.py):

- `infer_next_round` (run_predict): claims an OPEN round with a lease and asks every model about
  up to TOURNAMENT_INFERENCE_CHUNK samples, in sample_id order, one gateway call per sample (the
  models answer it concurrently, with the usual timeout and statuses); each sample's predictions
  and the round's cursor are written in one transaction. The last chunk moves it INFERENCE_DONE.
- `score_next_round` (run_score): claims a GROUND_TRUTH_UPLOADED round with a lease and scores it
  in ONE transaction that holds the round row locked and re-checks status and claim, so a round is
  scored exactly once however many run_score processes run; live scoring never claims a round's
  Inputs (`LIVE_INPUTS`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from coordinator_site import wakeup
from coordinator_site.boundary import clean_json, escape_text
from coordinator_site.contract import get_callable, get_contract
from coordinator_site.transitions import InvalidTransition, transition
from predictions.choices import ExpiryReason, FailureReason, InputStatus, ModelStatus, PredictionStatus
from predictions.gateway import ModelGateway
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from predictions.services import judge, storable_identity, upsert_model_identities
from scoring.aggregation import NOT_ASKED
from scoring.hashing import leaf_hash, snapshot_document
from scoring.models import Score, Snapshot, SnapshotSeal
from scoring.postprocess import ScorePass
from scoring.services import (
    InputOutcome,
    ScoringContext,
    _validated_ground_truth,
    backoff,
    flag_late_scores,
    hold_seal_lock,
    insert_scores,
    load_predictions,
    period_start_for,
    score_outcome,
    summarise_snapshots,
    upsert_snapshots,
)
from tournament.choices import RoundStatus, SamplePart
from tournament.models import Round

log = logging.getLogger(__name__)

ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
SAMPLE_ID_MAX = 128
DETAIL_MAX = 2000
MAX_SAMPLES = 100_000


class RoundError(ValueError):
    """Input the round cannot accept (bad samples, bad ground truth); nothing was written."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def config_scope_key(round_id: str) -> str:
    """The scope_key of a round's own PredictionConfig."""
    return f"tournament:{round_id}"


def prediction_scope_key(part: str) -> str:
    """The scope_key of a round's predictions and scores: one per part, the same for every round,
    so `Model.scores_by_scope` shows in-sample and out-of-sample separately."""
    return f"tournament:{part}"


# --- open ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSpec:
    sample_id: str
    features: dict[str, Any]
    part: str


def parse_samples(data: Any) -> list[SampleSpec]:
    """Samples from a round file: `{"samples": [...]}` or a bare list of
    `{"sample_id", "features", "part"?}` (part: in_sample (default) or out_of_sample).
    Raises RoundError listing every problem."""
    if isinstance(data, dict):
        data = data.get("samples")
    if not isinstance(data, list) or not data:
        raise RoundError("a round needs a non-empty list of samples")
    if len(data) > MAX_SAMPLES:
        raise RoundError(f"a round holds at most {MAX_SAMPLES} samples")
    problems, seen, specs = [], set(), []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            problems.append(f"sample #{index}: expected an object")
            continue
        sample_id = item.get("sample_id")
        if not isinstance(sample_id, str) or not SAMPLE_ID.match(sample_id):
            problems.append(
                f"sample #{index}: sample_id must be 1-{SAMPLE_ID_MAX} letters, digits, '.', '_', ':' or '-', "
                "starting alphanumeric"
            )
            continue
        if sample_id in seen:
            problems.append(f"sample {sample_id!r}: duplicate sample_id")
            continue
        seen.add(sample_id)
        part = item.get("part", SamplePart.IN_SAMPLE)
        if part not in SamplePart.values:
            problems.append(f"sample {sample_id!r}: part must be one of {SamplePart.values}")
            continue
        features = item.get("features")
        if not isinstance(features, dict):
            problems.append(f"sample {sample_id!r}: features must be an object")
            continue
        try:
            features = clean_json(features, field="features")
        except ValueError as exc:
            problems.append(f"sample {sample_id!r}: {exc}")
            continue
        specs.append(SampleSpec(sample_id, features, str(part)))
    if problems:
        raise RoundError(f"{len(problems)} invalid sample(s)", problems=problems)
    return specs


def default_weight() -> float:
    return float(settings.TOURNAMENT_OUT_OF_SAMPLE_WEIGHT)


def _checked_weight(weight: float | None) -> float:
    weight = default_weight() if weight is None else weight
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise RoundError("out_of_sample_weight must be a number in [0, 1]")
    return float(weight)


def open_round(
    *,
    round_id: str,
    samples: list[SampleSpec],
    out_of_sample_weight: float | None = None,
    meta: dict[str, Any] | None = None,
    actor: str = "",
    now: datetime | None = None,
) -> tuple[Round, bool]:
    """Store a round OPEN with its samples (one Input each) and wake run_predict, which asks the
    models. Returns (round, created); opening the same round with the same samples again is a
    no-op, with other samples an InvalidTransition (409)."""
    now = now or timezone.now()
    if not isinstance(round_id, str) or not ROUND_ID.match(round_id):
        raise RoundError("round_id: 1-64 characters of letters, digits, '.', '_' or '-', starting alphanumeric")
    if not samples:
        raise RoundError("a round needs at least one sample")
    weight = _checked_weight(out_of_sample_weight)
    if meta is not None and not isinstance(meta, dict):
        raise RoundError("meta must be an object")
    try:
        meta = clean_json(meta, field="meta") if meta else None
    except ValueError as exc:
        raise RoundError(str(exc)) from exc
    with transaction.atomic():
        existing = Round.objects.filter(round_id=round_id).first()
        if existing is not None:
            stored = {
                (sid, json.dumps(raw, sort_keys=True), scope.get("part"))
                for sid, raw, scope in Input.objects.filter(config_id=existing.config_id).values_list(
                    "sample_id", "raw_data", "scope"
                )
            }
            asked = {(s.sample_id, json.dumps(s.features, sort_keys=True), s.part) for s in samples}
            if stored == asked and existing.out_of_sample_weight == weight:
                return existing, False
            raise InvalidTransition(
                f"round {round_id} exists with other samples or weight", current=existing.status, target="OPEN"
            )
        config = PredictionConfig.objects.create(
            scope_key=config_scope_key(round_id),
            scope_template={"tournament_round": round_id},
            interval_seconds=1,
            horizon_seconds=0,
            active=False,  # never served by the schedule
            next_run_at=None,
            meta={"tournament_round": round_id},
        )
        Input.objects.bulk_create(
            [
                Input(
                    config=config,
                    scheduled_for=now,
                    sample_id=s.sample_id,
                    raw_data=s.features,
                    scope={"round_id": round_id, "sample_id": s.sample_id, "part": s.part},
                    received_at=now,
                    resolvable_at=now,
                )
                for s in samples
            ],
            batch_size=1000,
        )
        round_ = Round.objects.create(
            round_id=round_id,
            config=config,
            out_of_sample_weight=weight,
            sample_count=len(samples),
            meta={**(meta or {}), "opened_by": actor},
            opened_at=now,
        )
        wakeup.notify(wakeup.CONFIGS)  # run_predict: a round to infer
    return round_, True


# --- claiming ----------------------------------------------------------------------------------


def _claimable(status: str, now: datetime) -> Q:
    return (
        Q(status=status)
        & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    )


def claim_round(
    *, status: str, worker_id: str, now: datetime | None = None, round_pk: int | None = None
) -> tuple[str, Round | None]:
    """Lease the oldest claimable round in `status` (only round `round_pk` when given) to a fresh
    token (conditional UPDATE; FOR UPDATE SKIP LOCKED on Postgres so concurrent workers do not
    queue on one row)."""
    now = now or timezone.now()
    token = f"{worker_id}:{uuid4().hex[:12]}"[:128]
    free = _claimable(status, now)
    if round_pk is not None:
        free &= Q(pk=round_pk)
    with transaction.atomic():
        pk = (
            Round.objects.filter(free)
            .order_by("opened_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None:
            return token, None
        lease = now + timedelta(seconds=settings.TOURNAMENT_LEASE_SECONDS)
        if not Round.objects.filter(free, pk=pk).update(claimed_by=token, lease_until=lease):
            return token, None
    return token, Round.objects.get(pk=pk)


def _record_failure(round_: Round, *, token: str, exc: BaseException, now: datetime) -> None:
    """A unit that raised: back off (attempts, next_attempt_at) and release, so it cannot crash-loop."""
    attempts = round_.attempts + 1
    Round.objects.filter(pk=round_.pk, claimed_by=token).update(
        attempts=attempts,
        last_error=escape_text(f"{type(exc).__name__}: {exc}", max_chars=DETAIL_MAX),
        next_attempt_at=now + backoff(attempts),
        claimed_by="",
        lease_until=None,
    )


class ClaimLost(Exception):
    """The round's lease was taken over (or its status changed) before this write."""


def _hold(round_: Round, token: str, status: str) -> Round:
    """Lock the round row in the current transaction if this token still holds it in `status`."""
    locked = Round.objects.select_for_update().filter(pk=round_.pk, claimed_by=token, status=status).first()
    if locked is None:
        raise ClaimLost(f"round {round_.round_id}: claim lost or status changed")
    return locked


# --- inference ----------------------------------------------------------------------------------


@dataclass
class InferenceReport:
    round_id: str
    samples: int = 0
    predictions: int = 0
    done: bool = False
    counts: dict[str, int] | None = None


def infer_next_round(
    *, gateway: ModelGateway, worker_id: str, now: datetime | None = None, round_pk: int | None = None
) -> bool:
    """run_predict unit: infer one chunk of the oldest OPEN round (only round `round_pk` when
    given: `manage.py tournament infer <id>`); True when one was claimed."""
    now = now or timezone.now()
    token, round_ = claim_round(status=RoundStatus.OPEN, worker_id=worker_id, now=now, round_pk=round_pk)
    if round_ is None:
        return False
    try:
        report = infer_round_chunk(round_=round_, token=token, gateway=gateway)
        log.info(
            "round %s: %s sample(s), %s prediction(s)%s",
            report.round_id,
            report.samples,
            report.predictions,
            ", inference done" if report.done else "",
        )
    except ClaimLost:
        log.warning("round %s: inference claim lost", round_.round_id)
    except Exception as exc:
        log.exception("round %s: inference failed; backing off", round_.round_id)
        _record_failure(round_, token=token, exc=exc, now=timezone.now())
    return True


def infer_round_chunk(*, round_: Round, token: str, gateway: ModelGateway, chunk: int | None = None) -> InferenceReport:
    """Ask every model about the next `chunk` samples after the round's cursor (sample_id order):
    one gateway call per sample, all models at once with the usual timeout; each sample's
    predictions (ABSENT for ACTIVE models that did not answer) and the cursor advance are one
    transaction, so a takeover after a crash continues where the last write ended."""
    chunk = chunk or settings.TOURNAMENT_INFERENCE_CHUNK
    contract = get_contract()
    validator = get_callable("INFERENCE_OUTPUT_VALIDATOR")
    method = settings.TOURNAMENT_PREDICT_METHOD
    report = InferenceReport(round_id=round_.round_id, counts={})
    cursor = round_.meta.get("inference_cursor", "")
    samples = list(
        Input.objects.filter(config_id=round_.config_id, sample_id__gt=cursor).order_by("sample_id")[: chunk + 1]
    )
    for input_ in samples[:chunk]:
        answers = gateway.call(method, [input_.raw_data])  # network: outside any transaction
        performed_at = timezone.now()
        kept = []
        for answer in answers:
            try:
                storable_identity(answer.identity)
            except ValueError:
                log.warning("round %s: answer of a model with an unstorable identity dropped", round_.round_id)
                continue
            kept.append(answer)
        judged = [judge(a, validator=validator, output_type=contract.output_type) for a in kept]
        identities = {a.model_id: a.identity for a in kept}
        for identity in gateway.connected_models():
            try:
                identities.setdefault(identity.model_id, storable_identity(identity))
            except ValueError:
                continue
        with transaction.atomic():
            locked = _hold(round_, token, RoundStatus.OPEN)
            known = upsert_model_identities(identities=list(identities.values()), now=performed_at)
            rows = _prediction_rows(input_, judged, known, performed_at=performed_at)
            Prediction.objects.bulk_create(rows, ignore_conflicts=True)
            meta = {**locked.meta, "inference_cursor": input_.sample_id}
            Round.objects.filter(pk=round_.pk).update(
                meta=meta, lease_until=timezone.now() + timedelta(seconds=settings.TOURNAMENT_LEASE_SECONDS)
            )
            round_.meta = meta
        report.samples += 1
        report.predictions += len(rows)
        for row in rows:
            key = (row.failure_reason or row.status).lower()
            report.counts[key] = report.counts.get(key, 0) + 1
    now = timezone.now()
    with transaction.atomic():
        _hold(round_, token, RoundStatus.OPEN)
        if len(samples) <= chunk:
            transition(
                Round,
                pk=round_.pk,
                to=RoundStatus.INFERENCE_DONE,
                inference_done_at=now,
                claimed_by="",
                lease_until=None,
            )
            report.done = True
        else:  # release: live slots are served before the next chunk
            Round.objects.filter(pk=round_.pk).update(claimed_by="", lease_until=None)
    return report


def _prediction_rows(
    input_: Input, judged: list, known: dict[str, dict], *, performed_at: datetime
) -> list[Prediction]:
    scope_key = prediction_scope_key(input_.scope.get("part", SamplePart.IN_SAMPLE))
    shared = {
        "input_id": input_.pk,
        "config_id": input_.config_id,
        "scope_key": scope_key,
        "performed_at": performed_at,
        "resolvable_at": input_.resolvable_at,
    }
    rows, answered = [], set()
    for item in judged:
        model = known.get(item.identity.model_id)
        answered.add(item.identity.model_id)
        if model is None or model["status"] != ModelStatus.ACTIVE:
            continue
        rows.append(
            Prediction(
                model_id=model["pk"],
                deployment_id=item.identity.deployment_id,
                status=str(item.status),
                failure_reason=str(item.failure_reason),
                failure_detail=item.failure_detail,
                output=item.output,
                exec_time_us=item.exec_time_us,
                **shared,
            )
        )
    for model_id, model in known.items():
        if model["status"] == ModelStatus.ACTIVE and model_id not in answered:
            rows.append(
                Prediction(
                    model_id=model["pk"],
                    deployment_id=model["deployment_id"],
                    status=PredictionStatus.ABSENT,
                    **shared,
                )
            )
    return rows


# --- ground truth ---------------------------------------------------------------------------------


def parse_truth_file(text: str, *, name: str = "") -> dict[str, Any]:
    """Ground truth from a file's text, keyed by sample_id.

    JSON: `{"<sample_id>": {...}, ...}`, `{"ground_truth": ...}` or a list of objects with a
    `sample_id` key. CSV (name ending `.csv`, or text that is not JSON): a header row with a
    `sample_id` column; every other column is a truth field (numbers, true/false parsed as
    JSON, anything else kept as text). A sample_id given twice is an error."""
    stripped = text.lstrip()
    if not name.lower().endswith(".csv") and stripped[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RoundError(f"ground truth file is not valid JSON: {exc}") from exc
        return truth_mapping(data)
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "sample_id" not in reader.fieldnames:
        raise RoundError("ground truth CSV needs a header row with a sample_id column")
    rows = []
    for line in reader:
        row: dict[str, Any] = {}
        for key, value in line.items():
            if key is None:
                raise RoundError(f"ground truth CSV line {reader.line_num}: more cells than header columns")
            if key == "sample_id":
                row[key] = value
                continue
            try:
                row[key] = json.loads(value)
            except (TypeError, ValueError):
                row[key] = value
        rows.append(row)
    return truth_mapping(rows)


def truth_mapping(data: Any) -> dict[str, Any]:
    """Normalise an uploaded truth document to {sample_id: truth}."""
    if isinstance(data, dict) and "ground_truth" in data and len(data) <= 2:
        data = data["ground_truth"]
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    if not isinstance(data, list):
        raise RoundError("ground truth: expected an object keyed by sample_id or a list of rows with sample_id")
    mapping: dict[str, Any] = {}
    duplicates = []
    for index, row in enumerate(data):
        if not isinstance(row, dict) or row.get("sample_id") in (None, ""):
            raise RoundError(f"ground truth row #{index}: an object with a sample_id is needed")
        sample_id = str(row["sample_id"])
        if sample_id in mapping:
            duplicates.append(sample_id)
        mapping[sample_id] = {k: v for k, v in row.items() if k != "sample_id"}
    if duplicates:
        raise RoundError("ground truth: sample_id given more than once", problems=sorted(set(duplicates)))
    return mapping


def check_truth_uploadable(round_: Round) -> None:
    """InvalidTransition unless the round takes ground truth now (INFERENCE_DONE, or
    GROUND_TRUTH_UPLOADED: replaced); checked before a file is even parsed."""
    current = Round.objects.filter(pk=round_.pk).values_list("status", flat=True).first()
    if current not in (RoundStatus.INFERENCE_DONE, RoundStatus.GROUND_TRUTH_UPLOADED):
        hint = " (re-score it explicitly, with a reason)" if current == RoundStatus.SCORED else ""
        raise InvalidTransition(
            f"round {round_.round_id} is {current}: ground truth cannot be uploaded{hint}",
            current=current,
            target=RoundStatus.GROUND_TRUTH_UPLOADED,
        )


def upload_ground_truth(*, round_: Round, truth: dict[str, Any], actor: str = "", now: datetime | None = None) -> Round:
    """Validate and store a round's ground truth (INFERENCE_DONE, or GROUND_TRUTH_UPLOADED:
    replaced) and wake run_score. Each truth is checked against the contract's
    ground_truth_type on its own; the report lists missing, extra and invalid sample ids, and
    none of them shifts another sample's pairing. After scoring: InvalidTransition (re-score
    explicitly first)."""
    now = now or timezone.now()
    check_truth_uploadable(round_)
    ctx_type = get_contract().ground_truth_type
    sample_ids = set(Input.objects.filter(config_id=round_.config_id).values_list("sample_id", flat=True))
    accepted: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for sample_id, raw in truth.items():
        if sample_id not in sample_ids:
            continue
        try:
            typed = ctx_type.model_validate(raw)
            accepted[sample_id] = clean_json(typed.model_dump(mode="json", by_alias=True), field="ground truth")
        except (ValueError, TypeError) as exc:
            invalid[sample_id] = escape_text(str(exc), max_chars=500)
    report = {
        "samples": len(sample_ids),
        "accepted": len(accepted),
        "missing": sorted(sample_ids - set(truth)),
        "extra": sorted(set(truth) - sample_ids),
        "invalid": invalid,
        "uploaded_at": now.isoformat(),
        "uploaded_by": actor,
    }
    if not accepted:
        raise RoundError("no valid ground truth for any sample of the round", problems=[json.dumps(report)])
    with transaction.atomic():
        changed = Round.objects.filter(
            pk=round_.pk, status__in=[RoundStatus.INFERENCE_DONE, RoundStatus.GROUND_TRUTH_UPLOADED]
        ).update(
            status=RoundStatus.GROUND_TRUTH_UPLOADED,
            ground_truth=accepted,
            truth_report=report,
            truth_uploaded_at=now,
            attempts=0,
            next_attempt_at=None,
            last_error="",
            updated_at=now,
        )
        if not changed:
            current = Round.objects.filter(pk=round_.pk).values_list("status", flat=True).first()
            hint = " (re-score it explicitly, with a reason)" if current == RoundStatus.SCORED else ""
            raise InvalidTransition(
                f"round {round_.round_id} is {current}: ground truth cannot be uploaded{hint}",
                current=current,
                target=RoundStatus.GROUND_TRUTH_UPLOADED,
            )
        wakeup.notify(wakeup.INPUTS)  # run_score: a round to score
    return Round.objects.get(pk=round_.pk)


# --- scoring ----------------------------------------------------------------------------------------


def apply_round_score_pass(ctx: ScoringContext, outcomes: list[InputOutcome]) -> None:
    """The score pass (SCORE_PASS / the contract's `score_pass`, scoring/postprocess.py) over the
    round's population: every successfully scored prediction of the round, all samples and
    models together (live scoring's population is one Input). Called once, after every raw
    value is computed and before anything is written. Each successful Score gets the passed
    value (its result keeps `raw_value`); then each sample's missing answers get the
    missing-answer policy on that sample's passed values (0.0 for `worst` after normalising,
    the bottom of the scale, as live scoring does). No pass configured: nothing changes."""
    score_pass = ctx.score_pass
    if not score_pass.active:
        return
    successes = [s for o in outcomes for s in o.scores if s.success]
    raw = [s.value for s in successes]
    for score, raw_value, value in zip(successes, raw, score_pass.apply(raw), strict=True):
        score.value = value
        score.result = {
            **score.result,
            ctx.value_field: value,
            "raw_value": raw_value,
            "score_pass": score_pass.mode,
            "score_pass_population": "round",
        }
        score.result_json = None  # encoded again when inserted
    for outcome in outcomes:
        if outcome.kind != "resolved":
            continue  # an expired sample's answers have no value
        answered = [s for s in outcome.scores if s.success]
        penalty = ctx.policy.penalty([s.value for s in answered], direction=ctx.direction)
        if penalty is not None and score_pass.mode == "normalise" and ctx.policy.mode == "worst":
            penalty = 0.0
        raw_penalty = ctx.policy.penalty([s.result["raw_value"] for s in answered], direction=score_pass.raw_direction)
        for score in outcome.scores:
            if not score.success:
                score.value = penalty
                score.result = {**score.result, "raw_value": raw_penalty, "score_pass": score_pass.mode}
                score.result_json = None


def score_next_round(*, worker_id: str, now: datetime | None = None) -> bool:
    """run_score unit: score the oldest GROUND_TRUTH_UPLOADED round; True when one was claimed."""
    now = now or timezone.now()
    token, round_ = claim_round(status=RoundStatus.GROUND_TRUTH_UPLOADED, worker_id=worker_id, now=now)
    if round_ is None:
        return False
    try:
        scored = score_round(round_=round_, token=token, now=timezone.now())
        log.info(
            "round %s scored: %s sample(s) with truth, %s model(s)",
            scored.round_id,
            scored.truth_report.get("accepted"),
            len(scored.results.get("models", {})),
        )
    except ClaimLost:
        log.warning("round %s: scoring claim lost", round_.round_id)
    except Exception as exc:
        log.exception("round %s: scoring failed; backing off", round_.round_id)
        _record_failure(round_, token=token, exc=exc, now=timezone.now())
    return True


def score_round(*, round_: Round, token: str, now: datetime) -> Round:
    """Score a claimed round in one transaction: each prediction against its own sample's truth
    (a sample without truth: its Input EXPIRED, predictions FAILED NO_GROUND_TRUTH), the
    missing-answer policy per sample, one Score per prediction with performed_at = `now` (the
    period open now, never a sealed one), the snapshots updated, per-model results per part and
    combined, and SCORED. The round row stays locked, and status and claim are re-checked, for
    the whole transaction: exactly once."""
    ctx = ScoringContext(now)
    with transaction.atomic():
        hold_seal_lock(shared=True)
        locked = _hold(round_, token, RoundStatus.GROUND_TRUTH_UPLOADED)
        inputs = list(Input.objects.filter(config_id=locked.config_id).defer("raw_data").order_by("sample_id"))
        # A re-score: the earlier scores are removed and their snapshots recomputed without them.
        rebuild_snapshots(ctx, _undo_previous_scores(ctx, inputs))
        truth = locked.ground_truth or {}
        grouped = load_predictions([i.pk for i in inputs])
        # The pass runs over the whole round below, not per sample as in live scoring.
        round_pass, ctx.score_pass = ctx.score_pass, ScorePass()
        outcomes = []
        for input_ in inputs:
            raw = truth.get(input_.sample_id)
            if raw is None:
                outcome = InputOutcome(input_, "expired", error="no ground truth uploaded for this sample")
            else:
                actuals, ground_truth = _validated_ground_truth(ctx, raw)
                outcome = InputOutcome(input_, "resolved", actuals=actuals, ground_truth=ground_truth)
            outcome.predictions = grouped.get(input_.pk, [])
            outcome.pending = sum(1 for p in outcome.predictions if p.status == PredictionStatus.PENDING)
            score_outcome(ctx, outcome)
            outcomes.append(outcome)
        ctx.score_pass = round_pass
        apply_round_score_pass(ctx, outcomes)
        scores = [s for o in outcomes for s in o.scores]
        for score in scores:
            score.performed_at = now  # the round lands in the period open at scoring time
        _write_statuses(outcomes, now=now)
        flag_late_scores(scores)
        insert_scores(scores)
        upsert_snapshots(ctx, summarise_snapshots(ctx, outcomes))
        results = round_results(ctx, locked, outcomes)
        transition(
            Round,
            pk=locked.pk,
            to=RoundStatus.SCORED,
            expected=RoundStatus.GROUND_TRUTH_UPLOADED,
            scored_at=now,
            results=results,
            claimed_by="",
            lease_until=None,
            attempts=0,
            last_error="",
            next_attempt_at=None,
        )
        wakeup.notify(wakeup.SCORES)
    return Round.objects.get(pk=round_.pk)


def _write_statuses(outcomes: list[InputOutcome], *, now: datetime) -> None:
    resolved = [o for o in outcomes if o.kind == "resolved"]
    expired = [o for o in outcomes if o.kind == "expired"]
    for o in resolved:
        Input.objects.filter(pk=o.input.pk).update(
            status=InputStatus.RESOLVED, actuals=o.actuals, resolved_at=now, last_error=""
        )
    if expired:
        Input.objects.filter(pk__in=[o.input.pk for o in expired]).update(
            status=InputStatus.EXPIRED,
            expiry_reason=ExpiryReason.NO_GROUND_TRUTH,
            resolved_at=now,
            last_error="no ground truth uploaded for this sample",
        )
    errors = {pk: detail for o in resolved for pk, detail in o.scoring_errors}
    Prediction.objects.filter(input_id__in=[o.input.pk for o in resolved], status=PredictionStatus.PENDING).exclude(
        pk__in=list(errors)
    ).update(status=PredictionStatus.SCORED)
    for pk, detail in errors.items():
        Prediction.objects.filter(pk=pk, status=PredictionStatus.PENDING).update(
            status=PredictionStatus.FAILED, failure_reason=FailureReason.SCORING_ERROR, failure_detail=detail
        )
    Prediction.objects.filter(input_id__in=[o.input.pk for o in expired], status=PredictionStatus.PENDING).update(
        status=PredictionStatus.FAILED,
        failure_reason=FailureReason.NO_GROUND_TRUTH,
        failure_detail="no ground truth uploaded for this sample",
    )


def round_results(ctx: ScoringContext, round_: Round, outcomes: list[InputOutcome]) -> dict[str, Any]:
    """Per model: mean Score.value, count and statuses per part, and the combined score
    (1 - w) * in_sample + w * out_of_sample; a part the round has no samples of is left out
    (the other part is the combined score); ranked on the combined score in the contract's
    direction (ties share a rank)."""
    weight = round_.out_of_sample_weight
    parts_present = {o.input.scope.get("part", SamplePart.IN_SAMPLE) for o in outcomes}
    per_model: dict[int, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    for o in outcomes:
        part = o.input.scope.get("part", SamplePart.IN_SAMPLE)
        for score in o.scores:
            stats = per_model[score.model_id][part]
            stats["predictions"] += 1
            stats["scored"] += bool(score.success)
            if score.failed_reason and score.failed_reason not in NOT_ASKED:
                stats["failed"] += 1
            if score.value is not None:
                values[(score.model_id, part)].append(score.value)
    names = dict(ParticipantModel.objects.filter(pk__in=list(per_model)).values_list("pk", "model_id"))
    models: dict[str, Any] = {}
    for model_pk, parts in per_model.items():
        entry: dict[str, Any] = {}
        for part in sorted(parts_present):
            got = values.get((model_pk, part), [])
            stats = dict(parts.get(part, {}))
            entry[part] = {**stats, "n": len(got), "mean": math.fsum(got) / len(got) if got else None}
        means = {part: entry[part]["mean"] for part in parts_present}
        if len(parts_present) == 2:
            a, b = means[SamplePart.IN_SAMPLE], means[SamplePart.OUT_OF_SAMPLE]
            combined = None if a is None or b is None else (1 - weight) * a + weight * b
        else:
            combined = next(iter(means.values()))
        entry["combined"] = combined
        models[names[model_pk]] = entry
    ranked = sorted(
        (m for m in models.items() if m[1]["combined"] is not None),
        key=lambda item: item[1]["combined"] if ctx.direction == "desc" else -item[1]["combined"],
        reverse=True,
    )
    rank, previous = 0, None
    for position, (model_id, entry) in enumerate(ranked, start=1):
        if entry["combined"] != previous:
            rank, previous = position, entry["combined"]
        models[model_id]["rank"] = rank
    for entry in models.values():
        entry.setdefault("rank", None)
    return {
        "out_of_sample_weight": weight,
        "value_field": ctx.value_field,
        "direction": ctx.direction,
        "parts": sorted(parts_present),
        "models": dict(sorted(models.items())),
    }


# --- re-score -------------------------------------------------------------------------------------


def request_rescore(*, round_: Round, reason: str, actor: str = "", now: datetime | None = None) -> Round:
    """SCORED -> GROUND_TRUTH_UPLOADED, recorded with its reason; run_score then scores the round
    again, replacing its scores. Refused (InvalidTransition) when the round's scores are in a
    period a checkpoint has sealed: paid history is never rewritten."""
    now = now or timezone.now()
    if not isinstance(reason, str) or not reason.strip():
        raise RoundError("a re-score needs a reason")
    if round_.scored_at is not None and _sealed(round_.scored_at):
        raise InvalidTransition(
            f"round {round_.round_id}: its scores are in a sealed checkpoint period", current=round_.status
        )
    entry = {"reason": reason.strip()[:DETAIL_MAX], "actor": actor, "at": now.isoformat(), "scored_at": None}
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=round_.pk)
        entry["scored_at"] = locked.scored_at.isoformat() if locked.scored_at else None
        transition(
            Round,
            pk=locked.pk,
            to=RoundStatus.GROUND_TRUTH_UPLOADED,
            expected=RoundStatus.SCORED,
            rescores=[*locked.rescores, entry],
        )
        wakeup.notify(wakeup.INPUTS)
    return Round.objects.get(pk=round_.pk)


def _sealed(at: datetime) -> bool:
    start = period_start_for(at)
    return SnapshotSeal.objects.filter(period_start__lte=start, period_end__gt=start).exists()


def _undo_previous_scores(ctx: ScoringContext, inputs: list[Input]) -> set[tuple[int, datetime]]:
    """Before a re-score: remove the round's earlier Scores and reopen what scoring closed (Inputs
    RECEIVED, predictions SCORED or failed by scoring back to PENDING); returns the (model,
    period) snapshots to rebuild. A no-op on a round's first scoring."""
    ids = [i.pk for i in inputs]
    old = list(Score.objects.filter(input_id__in=ids).values_list("model_id", "performed_at", "late"))
    if not old:
        return set()
    if any(late for _, _, late in old) or any(_sealed(at) for at in {at for _, at, _ in old}):
        raise InvalidTransition("the round's earlier scores are in a sealed period: not re-scored")
    Score.objects.filter(input_id__in=ids).delete()
    Prediction.objects.filter(input_id__in=ids).filter(
        Q(status=PredictionStatus.SCORED)
        | Q(
            status=PredictionStatus.FAILED,
            failure_reason__in=[FailureReason.SCORING_ERROR, FailureReason.NO_GROUND_TRUTH],
        )
    ).update(status=PredictionStatus.PENDING, failure_reason="", failure_detail="")
    Input.objects.filter(pk__in=ids).update(
        status=InputStatus.RECEIVED, actuals=None, resolved_at=None, expiry_reason="", last_error=""
    )
    for input_ in inputs:
        input_.status = InputStatus.RECEIVED
    return {(model_id, period_start_for(at)) for model_id, at, _ in old}


def rebuild_snapshots(ctx: ScoringContext, keys: set[tuple[int, datetime]]) -> None:
    """Recompute these (model, period) snapshots from their Score rows (after scores were removed)."""
    period = timedelta(seconds=settings.SNAPSHOT_PERIOD_SECONDS)
    for model_id, start in sorted(keys):
        rows = Score.objects.filter(
            model_id=model_id, performed_at__gte=start, performed_at__lt=start + period, late=False
        )
        items = [
            {
                "status": PredictionStatus.SCORED
                if s.success
                else (s.result or {}).get("status", PredictionStatus.FAILED),
                "failure_reason": s.failed_reason,
                "success": s.success,
                "value": s.value,
                "result": s.result if s.success else {},
            }
            for s in rows
        ]
        snapshot = Snapshot.objects.select_for_update().filter(model_id=model_id, period_start=start).first()
        if snapshot is None:
            continue
        counts: dict[str, int] = {}
        for item in items:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        snapshot.prediction_count = len(items)
        snapshot.counts = counts
        snapshot.result_summary = ctx.aggregator(items) if items else {}
        snapshot.content_hash = leaf_hash(snapshot_document(snapshot))
        snapshot.save(update_fields=["prediction_count", "counts", "result_summary", "content_hash", "updated_at"])


# --- cancel ---------------------------------------------------------------------------------------


def cancel_round(*, round_: Round, reason: str, actor: str = "", now: datetime | None = None) -> Round:
    """OPEN / INFERENCE_DONE / GROUND_TRUTH_UPLOADED -> CANCELLED: its samples are EXPIRED and
    their open predictions FAILED NO_GROUND_TRUTH (not held against the models); never scored."""
    now = now or timezone.now()
    if not isinstance(reason, str) or not reason.strip():
        raise RoundError("a cancellation needs a reason")
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=round_.pk)
        if locked.status == RoundStatus.CANCELLED:
            return locked
        transition(
            Round,
            pk=locked.pk,
            to=RoundStatus.CANCELLED,
            cancel_reason=f"{reason.strip()[:DETAIL_MAX]} ({actor})" if actor else reason.strip()[:DETAIL_MAX],
            claimed_by="",
            lease_until=None,
        )
        Input.objects.filter(config_id=locked.config_id, status=InputStatus.RECEIVED).update(
            status=InputStatus.EXPIRED,
            expiry_reason=ExpiryReason.NO_GROUND_TRUTH,
            resolved_at=now,
            last_error="round cancelled",
        )
        Prediction.objects.filter(config_id=locked.config_id, status=PredictionStatus.PENDING).update(
            status=PredictionStatus.FAILED,
            failure_reason=FailureReason.NO_GROUND_TRUTH,
            failure_detail="round cancelled",
        )
    return Round.objects.get(pk=round_.pk)
