"""Writes of the predict stage: loading the configs file and running one predict cycle.

A cycle serves one schedule slot of one PredictionConfig (DESIGN.md §7):

1. claim the due config (conditional UPDATE of `claimed_by`/`lease_until`, committed);
2. raw input from the tape, scope, model input (contract slots), outside any transaction;
3. `tick` then `predict` through the model gateway (no transaction open);
4. validate each answer (INFERENCE_OUTPUT_VALIDATOR, then the contract's `output_type`);
5. atomically: upsert model identities (when they changed), insert the Input, insert every
   Prediction (PENDING / FAILED with a reason / ABSENT), advance `next_run_at` and release the
   claim, conditional on still holding it. On Postgres the last three are ONE statement (in
   autocommit when no identity needs writing); otherwise one transaction holds every write.

A crash anywhere before step 5 commits leaves no Input and no Prediction; the slot stays due
and is served once the lease expires. Inputs are unique per (config, scheduled_for), so a slot
can never be written twice.
"""

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import ValidationError

from coordinator_site import wakeup
from coordinator_site.boundary import Rejected, clean_json, clean_text, escape_text
from predictions.choices import FailureReason, ModelStatus, PredictionStatus
from predictions.configs import PredictionConfigSpec, read_configs
from predictions.gateway.base import CallStatus, ModelCallResult, ModelGateway, ModelIdentity
from predictions.models import Input, ModelDeployment, ParticipantModel, Prediction, PredictionConfig
from predictions.ticks import TickTracker, slot_tick_record

log = logging.getLogger("predictions")

SCOPE_REQUIRED_KEYS = ("source", "subject", "kind", "granularity", "scope_key", "horizon_seconds", "step_seconds")
DETAIL_MAX_CHARS = 2000
# Column sizes of the identity fields a gateway reports (longer ones are rejected, not cut).
IDENTITY_MAX_CHARS = {"model_id": 128, "name": 255, "cruncher_id": 128, "cruncher_name": 255, "deployment_id": 255}
LAST_SEEN_TOUCH_SECONDS = 60  # last_seen_at is refreshed at most this often per model (write amplification)
ERROR_BACKOFF_MAX_SECONDS = 300
# A leaderboard rebuild holds it exclusively, a new model's registration shared (PostgreSQL;
# SQLite serialises writers): a model registered while a board is computed gets a first_seen_at
# after that board, so a replay lists it on exactly the boards that listed it live.
MODEL_REGISTRY_LOCK_KEY = 0x5C0BE


# --- Models -------------------------------------------------------------------------------


def set_benchmark(*, model_ids: list[str], is_benchmark: bool) -> int:
    """Flag (or unflag) models as the benchmark; returns how many rows changed. A benchmark is
    ranked and shown but never paid; with `eligibility.benchmark_cutoff` models ranked at or below
    it are not paid either (docs/rules.md). Checkpoints record the flagged ids when built."""
    return (
        ParticipantModel.objects.filter(model_id__in=model_ids)
        .exclude(is_benchmark=is_benchmark)
        .update(is_benchmark=is_benchmark, updated_at=timezone.now())
    )


# --- Configs file ------------------------------------------------------------------------


def align_slot(now: datetime, interval_seconds: int) -> datetime:
    """The start of the `interval_seconds` slot holding `now` (slots aligned to the epoch)."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval_seconds, tz=now.tzinfo or timezone.get_current_timezone())


def upsert_prediction_configs(*, specs: list[PredictionConfigSpec], now: datetime | None = None) -> dict[str, int]:
    """Upsert configs by `scope_key` (never renumbered, never dropped and re-created).

    New configs are first due at the current aligned slot; an existing config keeps its
    `next_run_at` (the schedule survives reloads and restarts). Configs no longer in the file
    are deactivated, not deleted: their Inputs and Predictions stay.
    """
    now = now or timezone.now()
    counts = {"created": 0, "updated": 0, "unchanged": 0, "deactivated": 0}
    fields = ("scope_template", "interval_seconds", "horizon_seconds", "active", "order")
    with transaction.atomic():
        existing = {c.scope_key: c for c in PredictionConfig.objects.select_for_update()}
        for spec in specs:
            config = existing.get(spec.scope_key)
            values = {f: getattr(spec, f) for f in fields}
            if config is None:
                PredictionConfig.objects.create(
                    scope_key=spec.scope_key, next_run_at=align_slot(now, spec.interval_seconds), **values
                )
                counts["created"] += 1
            elif any(getattr(config, f) != v for f, v in values.items()):
                changes = dict(values)
                if config.next_run_at is None:
                    changes["next_run_at"] = align_slot(now, spec.interval_seconds)
                PredictionConfig.objects.filter(pk=config.pk).update(updated_at=now, **changes)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        listed = {s.scope_key for s in specs}
        gone = [c.pk for key, c in existing.items() if key not in listed and c.active]
        counts["deactivated"] = PredictionConfig.objects.filter(pk__in=gone).update(active=False, updated_at=now)
        if counts["created"] or counts["updated"] or counts["deactivated"]:
            wakeup.notify(wakeup.CONFIGS)  # run_predict recomputes its next due slot
    return counts


def load_prediction_configs(*, path: str | Path | None = None, now: datetime | None = None) -> dict[str, int]:
    """Read PREDICTION_CONFIGS_PATH (or `path`) and upsert it; ConfigFileError if it is invalid."""
    return upsert_prediction_configs(specs=read_configs(path or settings.PREDICTION_CONFIGS_PATH), now=now)


# --- Predict cycle ------------------------------------------------------------------------


@dataclass
class CycleReport:
    """What one cycle did, for the worker's log line, the heartbeat and the benchmark."""

    scope_key: str
    scheduled_for: datetime
    input_id: int | None = None
    skipped: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Judged:
    identity: ModelIdentity
    status: str
    failure_reason: str = ""
    failure_detail: str = ""
    output: Any = None
    exec_time_us: int | None = None


def claim_due_config(*, worker_id: str, now: datetime, lease_seconds: int) -> PredictionConfig | None:
    """Claim the most overdue active config (compare-and-swap on the lease), or None."""
    lease_until = now + timedelta(seconds=lease_seconds)
    if connection.vendor == "postgresql":
        # One round trip: lock the first free due row (skipping rows another worker is claiming
        # right now), re-check it under the lock, take the lease and return the row.
        claimed = list(PredictionConfig.objects.raw(_claim_sql(), [worker_id, lease_until, now, now]))
        return claimed[0] if claimed else None
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    due = PredictionConfig.objects.filter(free, active=True, next_run_at__lte=now)
    for config in due.order_by("next_run_at", "order", "scope_key")[:10]:
        if due.filter(pk=config.pk, next_run_at=config.next_run_at).update(
            claimed_by=worker_id, lease_until=lease_until
        ):
            config.claimed_by, config.lease_until = worker_id, lease_until
            return config
    return None


@cache
def _claim_sql() -> str:
    table = connection.ops.quote_name(PredictionConfig._meta.db_table)
    return (
        f"UPDATE {table} SET claimed_by = %s, lease_until = %s WHERE id = ("  # noqa: S608 (metadata only)
        f"SELECT id FROM {table} WHERE active AND next_run_at <= %s AND (lease_until IS NULL OR lease_until < %s) "
        'ORDER BY next_run_at, "order", scope_key LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *'
    )


def slot_to_serve(config: PredictionConfig, now: datetime) -> tuple[datetime, int]:
    """The newest slot of the config's grid at or before `now`, and how many slots were missed.

    After downtime the node serves the current slot once: it does not fire every missed slot
    at once (models cannot predict the past), and it never skips the slot that is due.
    """
    interval = config.interval_seconds
    behind = max(0, int((now - config.next_run_at).total_seconds() // interval))
    return config.next_run_at + timedelta(seconds=behind * interval), behind


def validated_output(output: Any, *, validator, output_type) -> dict[str, Any]:
    """The node's whole output check: the INFERENCE_OUTPUT_VALIDATOR slot, then the contract's
    `output_type`, then the storage boundary (text Postgres can hold, bounded finite numbers).
    Raises ValueError/TypeError (pydantic's ValidationError and `Rejected` are ValueErrors)."""
    return clean_json(
        output_type.model_validate(validator(output)).model_dump(mode="json", by_alias=True), field="output"
    )


def judge(result: ModelCallResult, *, validator, output_type) -> Judged:
    """Turn one predict answer into a prediction status (PENDING or FAILED with its reason)."""
    if result.status == CallStatus.TIMEOUT:
        return Judged(
            result.identity,
            PredictionStatus.FAILED,
            FailureReason.TIMEOUT,
            _clip(result.detail),
            None,
            result.exec_time_us,
        )
    if result.status == CallStatus.FAILED:
        return Judged(
            result.identity,
            PredictionStatus.FAILED,
            FailureReason.MODEL_ERROR,
            _clip(result.detail or "FAILED"),
            None,
            result.exec_time_us,
        )
    try:
        output = validated_output(result.output, validator=validator, output_type=output_type)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        return Judged(
            result.identity,
            PredictionStatus.FAILED,
            FailureReason.INVALID_OUTPUT,
            _clip(_describe_invalid(exc)),
            _storable(result.output),
            result.exec_time_us,
        )
    return Judged(result.identity, PredictionStatus.PENDING, "", "", output, result.exec_time_us)


def run_predict_cycle(
    *,
    gateway: ModelGateway,
    worker_id: str,
    now: datetime | None = None,
    lease_seconds: int | None = None,
    ticks: TickTracker | None = None,
) -> CycleReport | None:
    """Serve the most overdue due config once; None when nothing is due (or claimable).

    `ticks`: the worker's event ticks (docs/predict.md "Event ticks"): the cycle ticks only when
    the models were not already ticked with this slot's input. None: tick every cycle."""
    now = now or timezone.now()
    lease_seconds = settings.PREDICT_LEASE_SECONDS if lease_seconds is None else lease_seconds
    clock = time.perf_counter()
    config = claim_due_config(worker_id=worker_id, now=now, lease_seconds=lease_seconds)
    if config is None:
        return None
    claim_ms = _lap(clock)
    try:
        report = _serve(config, gateway=gateway, worker_id=worker_id, now=now, ticks=ticks)
        report.timings_ms = {"claim": claim_ms, **report.timings_ms}
        return report
    except BaseException as exc:
        _push_back(config, worker_id=worker_id, now=now, error=f"{type(exc).__name__}: {exc}")
        raise


def _serve(
    config: PredictionConfig, *, gateway: ModelGateway, worker_id: str, now: datetime, ticks: TickTracker | None
) -> CycleReport:
    from coordinator_site import metrics
    from coordinator_site.contract import get_callable, get_contract

    clock = time.perf_counter()
    scheduled_for, missed = slot_to_serve(config, now)
    report = CycleReport(scope_key=config.scope_key, scheduled_for=scheduled_for)
    next_run_at = scheduled_for + timedelta(seconds=config.interval_seconds)
    if missed:
        report.counts["missed_slots"] = missed
        if Input.objects.filter(config=config).exists():
            log.warning("%s: %d slot(s) missed during downtime; serving %s", config.scope_key, missed, scheduled_for)
        else:  # a new schedule whose first slots passed while the node started: nothing was missed
            log.info(
                "%s: first slot served is %s (the schedule started while the node was starting)",
                config.scope_key,
                scheduled_for,
            )

    contract = get_contract()
    raw_input = get_callable("RAW_INPUT_PROVIDER")(config, now)
    if raw_input is None:
        report.skipped = "no input data on the tape"
        _advance(config, worker_id=worker_id, next_run_at=next_run_at)
        report.counts["skipped"] = 1
        return report
    contract.raw_input_type.model_validate(raw_input)
    scope = get_callable("PREDICTION_SCOPE_BUILDER")(config, raw_input)
    missing = [k for k in SCOPE_REQUIRED_KEYS if k not in scope]
    if missing:
        raise ValueError(f"PREDICTION_SCOPE_BUILDER returned a scope without {missing}")
    inference_input = get_callable("INFERENCE_INPUT_BUILDER")(raw_input)
    method, args, kwargs = get_callable("PREDICT_CALL_BUILDER")(scope, inference_input)
    as_of = datetime.fromisoformat(raw_input["as_of"]) if raw_input.get("as_of") else None
    report.timings_ms["input_build"] = _lap(clock)

    clock = time.perf_counter()
    if ticks is None:
        tick_results = gateway.call("tick", [inference_input])
        tick_record = slot_tick_record(raw_input)
    else:
        tick_results, tick_record = ticks.slot_tick(config=config, raw_input=raw_input, inference_input=inference_input)
    report.timings_ms["tick"] = _lap(clock)
    answers = gateway.call(method, args, kwargs)
    report.timings_ms["model_calls"] = _lap(clock)

    clock = time.perf_counter()
    answers, rejected = _with_storable_identities(answers)
    if rejected:
        report.counts["identity_rejected"] = rejected
    validator = get_callable("INFERENCE_OUTPUT_VALIDATOR")
    judged = [judge(a, validator=validator, output_type=contract.output_type) for a in answers]
    for verdict in judged:
        seconds = verdict.exec_time_us / 1e6 if verdict.exec_time_us is not None else None
        metrics.model_answered(verdict.identity.model_id, status=verdict.failure_reason or "ok", seconds=seconds)
    report.timings_ms["validation"] = _lap(clock)

    clock = time.perf_counter()
    identities = {a.model_id: a.identity for a in answers}
    for identity in gateway.connected_models():
        if identity.model_id not in identities and _identity_problem(identity) is None:
            identities[identity.model_id] = identity
    try:
        input_id, counts = persist_cycle(
            config=config,
            worker_id=worker_id,
            scheduled_for=scheduled_for,
            next_run_at=next_run_at,
            now=now,
            raw_input=raw_input,
            scope=scope,
            as_of=as_of,
            identities=list(identities.values()),
            judged=judged,
            ticks=tick_record,
        )
    except SlotAlreadyServed:
        report.skipped = "slot already served"
        report.counts["duplicate"] = 1
        PredictionConfig.objects.filter(pk=config.pk, claimed_by=worker_id).update(claimed_by="", lease_until=None)
        return report
    report.timings_ms["persistence"] = _lap(clock)
    report.input_id = input_id
    report.counts.update(counts)
    tick_problems = sum(1 for t in tick_results or () if t.status != CallStatus.SUCCESS)
    if tick_problems:
        report.counts["tick_failed"] = tick_problems
    return report


def _identity_problem(identity: ModelIdentity) -> Rejected | None:
    try:
        storable_identity(identity)
    except Rejected as exc:
        return exc
    return None


def _with_storable_identities(answers: list[ModelCallResult]) -> tuple[list[ModelCallResult], int]:
    """The answers of models whose identity can be stored; the others are dropped (logged with
    the reason): a model the node cannot name cannot be credited."""
    kept, rejected = [], 0
    for answer in answers:
        problem = _identity_problem(answer.identity)
        if problem is None:
            kept.append(answer)
        else:
            rejected += 1
            log.warning("answer of a model with an unstorable identity dropped: %s", escape_text(str(problem)))
    return kept, rejected


class SlotAlreadyServed(Exception):
    """Another worker wrote this (config, scheduled_for) first; this cycle wrote nothing."""


class ClaimLost(Exception):
    """The lease expired and someone else claimed the config; this cycle wrote nothing."""


def persist_cycle(
    *,
    config: PredictionConfig,
    worker_id: str,
    scheduled_for: datetime,
    next_run_at: datetime,
    now: datetime,
    raw_input: dict,
    scope: dict,
    as_of: datetime | None,
    identities: list[ModelIdentity],
    judged: list[Judged],
    ticks: dict | None = None,
) -> tuple[int, dict[str, int]]:
    """Write one whole cycle atomically: identities, Input, every Prediction (ABSENT included)
    and the advanced schedule. All or nothing.

    Postgres: the Input, the Predictions and the schedule are ONE statement (`_cycle_sql`), so
    when the model identities need no write (the usual cycle) the cycle is two round trips (read
    the ACTIVE models, write) without BEGIN/COMMIT; otherwise, and on other backends, one
    transaction holds every write.
    """
    resolvable_at = scheduled_for + timedelta(seconds=config.horizon_seconds)
    input_row = Input(
        config=config,
        scheduled_for=scheduled_for,
        raw_data=raw_input,
        scope=scope,
        as_of=as_of,
        ticks=ticks or {},
        received_at=now,
        resolvable_at=resolvable_at,
    )
    single_statement = connection.vendor == "postgresql"
    try:
        known = known_models(model_ids=[i.model_id for i in identities], now=now)
        write_identities = identities_need_write(identities=identities, known=known)
        one_write = single_statement and not write_identities and transaction.get_autocommit()
        with nullcontext() if one_write else transaction.atomic():
            if write_identities:
                known = upsert_model_identities(identities=identities, now=now, known=known)
            rows, counts = _prediction_rows(judged, known)
            if single_statement:
                input_id = _write_cycle_postgres(
                    input_row=input_row, config=config, worker_id=worker_id, next_run_at=next_run_at, now=now, rows=rows
                )
            else:
                input_row.save(force_insert=True)
                input_id = input_row.pk
                insert_predictions(
                    input_id=input_id, config=config, performed_at=now, resolvable_at=resolvable_at, rows=rows
                )
                _advance(config, worker_id=worker_id, next_run_at=next_run_at)
    except IntegrityError as exc:
        if Input.objects.filter(config=config, scheduled_for=scheduled_for).exists():
            raise SlotAlreadyServed(str(exc)) from exc
        raise
    except DatabaseError as exc:
        # Something the boundary let through was refused by the database: write the cycle
        # again, isolating the rows it refuses, so one answer never costs the others theirs.
        log.warning("%s: cycle write refused (%s); isolating the offending rows", config.scope_key, exc)
        input_id, rows, counts = _persist_isolating(
            config=config,
            worker_id=worker_id,
            input_row=input_row,
            next_run_at=next_run_at,
            now=now,
            identities=identities,
            judged=judged,
        )
    counts["predictions"] = len(rows)
    return input_id, counts


def _persist_isolating(
    *,
    config: PredictionConfig,
    worker_id: str,
    input_row: Input,
    next_run_at: datetime,
    now: datetime,
    identities: list[ModelIdentity],
    judged: list[Judged],
) -> tuple[int, list[tuple], dict[str, int]]:
    """The whole cycle again in one transaction, the predictions in halving savepoints: a row
    the database refuses on its own is written FAILED (INVALID_OUTPUT, WRITE_REJECTED, no output)."""
    with transaction.atomic():
        known = upsert_model_identities(identities=identities, now=now)
        rows, counts = _prediction_rows(judged, known)
        input_row.pk = None
        input_row.save(force_insert=True)

        def insert(chunk: list[tuple]) -> None:
            insert_predictions(
                input_id=input_row.pk,
                config=config,
                performed_at=now,
                resolvable_at=input_row.resolvable_at,
                rows=chunk,
            )

        pending = [rows]
        while pending:
            chunk = pending.pop()
            try:
                with transaction.atomic():
                    insert(chunk)
            except DatabaseError as exc:
                if len(chunk) > 1:
                    pending += [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
                    continue
                model_pk, deployment_id, *_rest, exec_time_us = chunk[0]
                detail = _clip(f"WRITE_REJECTED: {exc}")
                failed = (model_pk, deployment_id, str(PredictionStatus.FAILED), str(FailureReason.INVALID_OUTPUT))
                with transaction.atomic():
                    insert([(*failed, detail, None, exec_time_us)])
                counts["write_rejected"] = counts.get("write_rejected", 0) + 1
        _advance(config, worker_id=worker_id, next_run_at=next_run_at)
    return input_row.pk, rows, counts


def _prediction_rows(judged: list[Judged], models: dict[str, dict]) -> tuple[list[tuple], dict[str, int]]:
    """One row (in `_ROW_COLUMNS` order) per answer of an ACTIVE model, then one ABSENT row per
    ACTIVE model that did not answer; and the counts by outcome."""
    rows, counts = [], {}
    answered = set()
    for item in judged:
        model = models.get(item.identity.model_id)
        answered.add(item.identity.model_id)
        if model is None or model["status"] != ModelStatus.ACTIVE:
            counts["retired_skipped"] = counts.get("retired_skipped", 0) + 1
            continue
        rows.append(
            (
                model["pk"],
                item.identity.deployment_id,
                str(item.status),
                str(item.failure_reason),
                item.failure_detail,
                item.output,
                item.exec_time_us,
            )
        )
        key = (item.failure_reason or item.status).lower()
        counts[key] = counts.get(key, 0) + 1
    absent = str(PredictionStatus.ABSENT)
    for model_id, model in models.items():
        if model["status"] == ModelStatus.ACTIVE and model_id not in answered:
            rows.append((model["pk"], model["deployment_id"], absent, "", "", None, None))
            counts["absent"] = counts.get("absent", 0) + 1
    return rows, counts


# Columns of one cycle's Prediction rows: the same value for every row, then one value per row
# (`output` as a Python value, None for SQL NULL).
_SHARED_COLUMNS = ("input", "config", "scope_key", "performed_at", "resolvable_at")
_ROW_COLUMNS = ("model", "deployment_id", "status", "failure_reason", "failure_detail", "output", "exec_time_us")


@cache
def _cycle_sql() -> str:
    """Postgres: claim check + schedule advance, Input insert and every Prediction in one
    statement, built from the models' metadata only (no user input in the text).

    The Input is inserted only if the UPDATE still finds the claim, and the Predictions only
    for that Input, so a lost claim writes nothing (no row returned); a duplicate slot fails
    the whole statement on `input_natural_key`.
    """
    quote = connection.ops.quote_name
    input_fields = [f for f in Input._meta.local_concrete_fields if not f.primary_key]
    prediction_fields = [Prediction._meta.get_field(n) for n in _SHARED_COLUMNS + _ROW_COLUMNS]
    casts = [f"%s::{f.cast_db_type(connection)}" for f in prediction_fields[1 : len(_SHARED_COLUMNS)]]
    # The rows travel as ONE JSON document (encoded by json.dumps in C, parsed once by the server).
    record = [f"r{i} {f.cast_db_type(connection)}" for i, f in enumerate(prediction_fields[len(_SHARED_COLUMNS) :])]
    picks = [f"r{i}" for i in range(len(_ROW_COLUMNS))]
    return (
        f"WITH claim AS (UPDATE {quote(PredictionConfig._meta.db_table)} "  # noqa: S608 (metadata only)
        "SET next_run_at = %s, claimed_by = '', lease_until = NULL, meta = meta - 'last_error' - 'attempts' "
        "WHERE id = %s AND claimed_by = %s AND next_run_at = %s RETURNING id), "
        f"new_input AS (INSERT INTO {quote(Input._meta.db_table)} ({', '.join(quote(f.column) for f in input_fields)}) "
        f"SELECT {', '.join(f'%s::{f.cast_db_type(connection)}' for f in input_fields)} FROM claim RETURNING id), "
        f"new_predictions AS (INSERT INTO {quote(Prediction._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in prediction_fields)}) "
        f"SELECT new_input.id, {', '.join(casts + picks)} "
        f"FROM new_input, json_to_recordset(%s::json) AS r({', '.join(record)})) "
        # Wakes run_score (sent at COMMIT; with this statement in autocommit, at once).
        f"SELECT id, pg_notify('{wakeup.INPUTS}', '') FROM new_input"
    )


def _write_cycle_postgres(
    *, input_row: Input, config: PredictionConfig, worker_id: str, next_run_at: datetime, now: datetime, rows: list
) -> int:
    input_values = [
        f.get_db_prep_save(f.pre_save(input_row, add=True), connection)
        for f in Input._meta.local_concrete_fields
        if not f.primary_key
    ]
    keys = [f"r{i}" for i in range(len(_ROW_COLUMNS))]
    document = json.dumps([dict(zip(keys, row, strict=True)) for row in rows])
    with connection.cursor() as cursor:
        cursor.execute(
            _cycle_sql(),
            [
                next_run_at,
                config.pk,
                worker_id,
                config.next_run_at,
                *input_values,
                config.pk,
                config.scope_key,
                now,
                input_row.resolvable_at,
                document,
            ],
        )
        written = cursor.fetchone()
    if written is None:
        raise ClaimLost(f"{config.scope_key}: claim lost before the cycle was written")
    return written[0]


def insert_predictions(
    *, input_id: int, config: PredictionConfig, performed_at: datetime, resolvable_at: datetime, rows: list[tuple]
) -> None:
    """Insert one cycle's Predictions (rows from `_prediction_rows`) without model instances:
    one executemany of a one-row INSERT, in the caller's transaction (backends other than Postgres)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    columns = ", ".join(_columns(Prediction, _SHARED_COLUMNS + _ROW_COLUMNS))
    sql = (
        f"INSERT INTO {quote(Prediction._meta.db_table)} ({columns}) "  # noqa: S608 (metadata only)
        f"VALUES ({', '.join(['%s'] * (len(_SHARED_COLUMNS) + len(_ROW_COLUMNS)))})"
    )
    adapt = connection.ops.adapt_datetimefield_value
    shared = [input_id, config.pk, config.scope_key, adapt(performed_at), adapt(resolvable_at)]
    with connection.cursor() as cursor:
        cursor.executemany(
            sql, [[*shared, *row[:5], None if row[5] is None else json.dumps(row[5]), row[6]] for row in rows]
        )


def _advance(config: PredictionConfig, *, worker_id: str, next_run_at: datetime) -> None:
    """Move the schedule on and release the claim, only if this worker still holds it
    (backends other than Postgres, and skipped slots; on Postgres `_cycle_sql` does it)."""
    changes = {"next_run_at": next_run_at, "claimed_by": "", "lease_until": None}
    if config.meta.get("last_error"):
        changes["meta"] = {k: v for k, v in config.meta.items() if k not in ("last_error", "attempts")}
    updated = PredictionConfig.objects.filter(
        pk=config.pk, claimed_by=worker_id, next_run_at=config.next_run_at
    ).update(**changes)
    if updated != 1:
        raise ClaimLost(f"{config.scope_key}: claim lost before the cycle was written")


def _push_back(config: PredictionConfig, *, worker_id: str, now: datetime, error: str) -> None:
    """A failing cycle is recorded and retried later with backoff, so it cannot crash-loop or
    hold up the other configs (the claim query skips leased rows)."""
    attempts = int(config.meta.get("attempts", 0)) + 1
    backoff = min(ERROR_BACKOFF_MAX_SECONDS, 2**attempts)
    try:
        PredictionConfig.objects.filter(pk=config.pk, claimed_by=worker_id).update(
            claimed_by="",
            lease_until=now + timedelta(seconds=backoff),
            meta={**config.meta, "last_error": error[:DETAIL_MAX_CHARS], "attempts": attempts},
        )
    except Exception:
        log.warning("%s: could not record the cycle error", config.scope_key, exc_info=True)


def known_models(*, model_ids: list[str], now: datetime) -> dict[str, dict]:
    """Every ACTIVE model plus the given ones, keyed by model_id, as dicts with `pk`, `model_id`,
    the identity fields, `status` and `stale` (last_seen_at older than LAST_SEEN_TOUCH_SECONDS)."""
    touch_before = now - timedelta(seconds=LAST_SEEN_TOUCH_SECONDS)
    # Every ACTIVE model, read without the ORM (this runs every cycle, with every model)...
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_columns(ParticipantModel, _MODEL_FIELDS))}, last_seen_at < %s "  # noqa: S608 (metadata only)
            f"FROM {connection.ops.quote_name(ParticipantModel._meta.db_table)} WHERE status = %s",
            [connection.ops.adapt_datetimefield_value(touch_before), str(ModelStatus.ACTIVE)],
        )
        known = {row[1]: {**dict(zip(_MODEL_FIELDS, row, strict=False)), "stale": bool(row[-1])} for row in cursor}
    # ...plus the given models that are not ACTIVE (new, or retired but still connected).
    missing = [model_id for model_id in model_ids if model_id not in known]
    if missing:
        for row in ParticipantModel.objects.filter(model_id__in=missing).values(*_MODEL_FIELDS, "last_seen_at"):
            known[row["model_id"]] = {**row, "stale": row.pop("last_seen_at") < touch_before}
    return known


_MODEL_FIELDS = ("pk", "model_id", "name", "cruncher_id", "cruncher_name", "deployment_id", "status", "cruncher_index")
_IDENTITY_FIELDS = ("name", "cruncher_id", "cruncher_name", "deployment_id")


def identities_need_write(*, identities: list[ModelIdentity], known: dict[str, dict]) -> bool:
    """Whether `upsert_model_identities` would write anything (a new or changed identity, or a
    last_seen_at to refresh)."""
    for identity in identities:
        row = known.get(identity.model_id)
        if row is None or row["stale"] or any(row[k] != getattr(identity, k) for k in _IDENTITY_FIELDS):
            return True
        if identity.cruncher_index is not None and row.get("cruncher_index") is None:
            return True
    return False


def upsert_model_identities(
    *, identities: list[ModelIdentity], now: datetime, known: dict[str, dict] | None = None
) -> dict[str, dict]:
    """Make `Model` match what the gateway reports, writing only what changed.

    Returns every known model that is ACTIVE or was just seen, keyed by model_id, as dicts
    with `pk`, `status` and `deployment_id`. New models join ACTIVE; a changed deployment_id
    is recorded in ModelDeployment (a redeploy); a cruncher_index the gateway knows fills an
    empty `cruncher_index` only (an operator's value wins); `last_seen_at` is refreshed at most every
    LAST_SEEN_TOUCH_SECONDS. `known`: what `known_models` returned for these identities (read
    again when not given).
    """
    seen = {i.model_id: i for i in identities}
    if known is None:
        known = known_models(model_ids=list(seen), now=now)
    first_seen = now
    if any(model_id not in known for model_id in seen):
        # Registered when the lock is held: the cycle's `now` (its start) may already lie
        # behind a board computed while the models were answering.
        hold_advisory_lock(MODEL_REGISTRY_LOCK_KEY, shared=True)
        first_seen = max(now, timezone.now())
    changed, deployments, stale, indexes = [], [], [], []
    for model_id, identity in seen.items():
        row = known.get(model_id)
        if identity.cruncher_index is not None and (row is None or row.get("cruncher_index") is None):
            indexes.append(identity)
        fields = {
            "name": identity.name,
            "cruncher_id": identity.cruncher_id,
            "cruncher_name": identity.cruncher_name,
            "deployment_id": identity.deployment_id,
        }
        if row is None or any(row[k] != v for k, v in fields.items()):
            changed.append(ParticipantModel(model_id=model_id, first_seen_at=first_seen, last_seen_at=now, **fields))
            if row is None or row["deployment_id"] != identity.deployment_id:
                deployments.append(identity)
        elif row["stale"]:
            stale.append(row["pk"])
    if changed:
        saved = ParticipantModel.objects.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=["model_id"],
            update_fields=["name", "cruncher_id", "cruncher_name", "deployment_id", "last_seen_at", "updated_at"],
        )
        for obj in saved:
            row = known.get(obj.model_id) or {"status": ModelStatus.ACTIVE}
            if obj.pk is None:  # backends that do not return ids on upsert
                obj.pk = ParticipantModel.objects.values_list("pk", flat=True).get(model_id=obj.model_id)
            known[obj.model_id] = {**row, "pk": obj.pk, "model_id": obj.model_id, "deployment_id": obj.deployment_id}
    for identity in indexes:
        # Conditional: fills the index only where it is still empty, in the row as it is now.
        ParticipantModel.objects.filter(model_id=identity.model_id, cruncher_index__isnull=True).update(
            cruncher_index=identity.cruncher_index
        )
        known[identity.model_id]["cruncher_index"] = identity.cruncher_index
    if deployments:
        ModelDeployment.objects.bulk_create(
            [
                ModelDeployment(
                    model_id=known[i.model_id]["pk"], deployment_id=i.deployment_id, first_seen_at=now, last_seen_at=now
                )
                for i in deployments
            ],
            update_conflicts=True,
            unique_fields=["model", "deployment_id"],
            update_fields=["last_seen_at"],
        )
    if stale:
        ParticipantModel.objects.filter(pk__in=stale).update(last_seen_at=now)
    return known


def hold_advisory_lock(key: int, *, shared: bool) -> None:
    """Take advisory lock `key` for the current transaction (PostgreSQL; SQLite serialises writers)."""
    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [key])


def _columns(model, names) -> list[str]:
    """Quoted column names of a model's fields (`pk` included), for the hand-written hot queries."""
    meta = model._meta
    return [connection.ops.quote_name((meta.pk if n == "pk" else meta.get_field(n)).column) for n in names]


def _lap(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _clip(text: str | None) -> str:
    """A model's diagnostic text (error detail, exception message), made storable and clipped."""
    return escape_text(text or "", max_chars=DETAIL_MAX_CHARS)


def _describe_invalid(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'output'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _storable(output: Any) -> Any:
    """Keep an invalid answer when the database can hold it, else its repr (escaped)."""
    try:
        return clean_json(output, field="output")
    except Rejected:
        return {"unstorable_output": escape_text(repr(output), max_chars=DETAIL_MAX_CHARS)}


def storable_identity(identity: ModelIdentity) -> ModelIdentity:
    """The identity if every field is storable text that fits its column, else Rejected."""
    for name, max_chars in IDENTITY_MAX_CHARS.items():
        clean_text(getattr(identity, name), field=f"model {name}", max_chars=max_chars)
    return identity
