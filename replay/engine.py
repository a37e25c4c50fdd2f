"""The replay itself, run inside the child process whose default database is the scratch store.

1. `copy_live_rows`: the rows the workers read (configs, models, the range's Inputs and
   Predictions, the tape when re-resolving) are copied from the live store (the read-only
   `replay_source` alias) into the migrated scratch store, with the Inputs and Predictions put
   back in the state the predict worker left them (PENDING / FAILED / ABSENT, RECEIVED);
2. `live_events`: what the live workers did and when, from stored rows only: one score batch per
   distinct `Input.resolved_at` (the batch clock, = `Score.scored_at`), each retained leaderboard
   (`created_at`), each checkpoint build (`created_at`) and void (`meta.voided.at`);
3. `run_events`: the same service functions the workers call, in that order, each with its
   stored clock: `score_batch(now=)`, `rebuild_leaderboard(now=)`, `build_checkpoint(now=)`,
   `checkpoint_void`;
4. `compare`: scores, snapshots, leaderboards and checkpoints, stored against replayed.

Nothing here implements scoring, ranking, emission or hashing a second time.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.color import no_style
from django.db import connection, connections, models

from checkpoints.models import Checkpoint
from checkpoints.selectors import Period, aligned_period
from checkpoints.services import build_checkpoint, checkpoint_void
from coordinator_site.contract import get_contract
from coordinator_site.exact import exact, exact_mean
from feeds.models import FeedRecord
from predictions.choices import ExpiryReason, FailureReason, InputStatus, ModelStatus, PredictionStatus
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from scoring.hashing import canonical_json, snapshot_document
from scoring.models import Leaderboard, Score, Snapshot
from scoring.services import rebuild_leaderboard, score_batch

log = logging.getLogger(__name__)

SOURCE = "replay_source"
CHUNK = 5000
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
# Failure reasons the score worker writes (the predict worker writes the others).
SCORE_WORKER_REASONS = {FailureReason.NO_GROUND_TRUTH, FailureReason.SCORING_ERROR, FailureReason.INPUT_POISONED}
# Checkpoint meta written after the build (operator actions, verification runs): not compared.
META_AFTER_BUILD = {"verification", "voided", "empty_payout_override"}
EXAMPLES = 20


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay: [start, end) compared; data from `scratch_start` (the leaderboard windows' reach)."""

    start: datetime
    end: datetime
    scratch_start: datetime
    reresolve: bool = False
    batch: int = 500
    # Score the live units between two other events (leaderboard, build, void) in one go, at the
    # last unit's clock: everything hashed, ranked and paid is the same, only Score.scored_at is
    # not (it is then left out of the comparison). For speed: one unit per live minute otherwise.
    coalesce: bool = False
    backtest_models: tuple[str, ...] = ()  # model folders run over the stored Inputs (backtest)
    backtest_scope: str = ""  # only the Inputs of this config's scope_key

    @classmethod
    def for_range(
        cls, *, start: datetime, end: datetime, reresolve: bool = False, batch: int = 500, **extra
    ) -> ReplaySpec:
        """The scratch data starts one longest leaderboard window before `start`, at a checkpoint
        period boundary, so every leaderboard and checkpoint compared sees all its scores."""
        hours = max(w.hours for w in get_contract().aggregation.windows.values())
        scratch_start = aligned_period(start - timedelta(hours=hours)).start
        return cls(start=start, end=end, scratch_start=scratch_start, reresolve=reresolve, batch=batch, **extra)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "scratch_start": self.scratch_start.isoformat(),
            "reresolve": self.reresolve,
            "batch": self.batch,
            "coalesce": self.coalesce,
            "backtest_models": list(self.backtest_models),
            "backtest_scope": self.backtest_scope,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplaySpec:
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            scratch_start=datetime.fromisoformat(data["scratch_start"]),
            reresolve=bool(data.get("reresolve")),
            batch=int(data.get("batch", 500)),
            coalesce=bool(data.get("coalesce")),
            backtest_models=tuple(data.get("backtest_models") or ()),
            backtest_scope=data.get("backtest_scope") or "",
        )


# --- 1. copy ---------------------------------------------------------------------------------


def _fields(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def _copy(model: type[models.Model], source_rows: models.QuerySet, reset=None) -> int:
    """Copy rows (same primary keys) from the live store into the scratch store, chunk by chunk."""
    names = _fields(model)
    copied, chunk = 0, []
    for values in source_rows.order_by("pk").values_list(*names).iterator(chunk_size=CHUNK):
        row = dict(zip(names, values, strict=True))
        if reset is not None:
            reset(row)
        chunk.append(model(**row))
        if len(chunk) >= CHUNK:
            model.objects.bulk_create(chunk, batch_size=CHUNK)
            copied, chunk = copied + len(chunk), []
    if chunk:
        model.objects.bulk_create(chunk, batch_size=CHUNK)
        copied += len(chunk)
    return copied


def range_inputs(spec: ReplaySpec, *, using: str = SOURCE) -> models.QuerySet:
    """The Inputs replayed: received in [scratch_start, end) (received_at = their predictions' performed_at)."""
    return Input.objects.using(using).filter(received_at__gte=spec.scratch_start, received_at__lt=spec.end)


def copy_live_rows(spec: ReplaySpec) -> dict[str, int]:
    """Fill the (freshly migrated, empty) scratch store; returns rows copied per table."""
    from replay import resolver

    max_attempts = settings.SCORE_MAX_ATTEMPTS

    def reset_input(row: dict[str, Any]) -> None:
        status, resolved_at = row["status"], row["resolved_at"]
        if status == InputStatus.EXPIRED and row["expiry_reason"] == ExpiryReason.POISONED and not spec.reresolve:
            resolver.POISONED_INPUT_IDS.add(row["id"])
            row["attempts"] = max_attempts - 1  # the replayed attempt is its last one, as it was live
        else:
            row["attempts"] = 0
        # Due exactly when the live worker finished it; still open live: never due in the replay.
        row["next_attempt_at"] = resolved_at if status != InputStatus.RECEIVED else FAR_FUTURE
        if spec.reresolve or status != InputStatus.RESOLVED:
            row["actuals"] = None
        row.update(
            status=InputStatus.RECEIVED,
            resolved_at=None,
            claimed_by="",
            lease_until=None,
            last_error="",
            expiry_reason="",
        )

    def reset_prediction(row: dict[str, Any]) -> None:
        status = row["status"]
        if status == PredictionStatus.SCORED or (
            status == PredictionStatus.FAILED and row["failure_reason"] in SCORE_WORKER_REASONS
        ):
            row.update(status=PredictionStatus.PENDING, failure_reason="", failure_detail="")

    def reset_model(row: dict[str, Any]) -> None:
        # Not there before the predict worker first saw it: a leaderboard lists every ACTIVE
        # model, so each model becomes what it is live at its first_seen_at (a "model" event).
        row["status"] = ModelStatus.RETIRED

    inputs = range_inputs(spec)
    counts = {
        "prediction_configs": _copy(PredictionConfig, PredictionConfig.objects.using(SOURCE).all()),
        "models": _copy(ParticipantModel, ParticipantModel.objects.using(SOURCE).all(), reset_model),
        "inputs": _copy(Input, inputs, reset_input),
    }
    if connection.vendor == "postgresql" and connections[SOURCE].vendor == "postgresql":
        counts["predictions"] = _copy_predictions_postgres(spec)
    else:
        counts["predictions"] = _copy(
            Prediction,
            Prediction.objects.using(SOURCE).filter(
                performed_at__gte=spec.scratch_start, performed_at__lt=spec.end, input__in=inputs
            ),
            reset_prediction,
        )
    if spec.reresolve:
        last = inputs.aggregate(last=models.Max("resolvable_at"))["last"] or spec.end
        grace = timedelta(seconds=settings.GROUND_TRUTH_GRACE_SECONDS)
        counts["feed_records"] = _copy(
            FeedRecord,
            FeedRecord.objects.using(SOURCE).filter(
                ts_event__gte=spec.scratch_start - timedelta(days=1), ts_event__lte=last + grace + timedelta(hours=1)
            ),
        )
    # The checkpoint before the scratch data, so the schedule and "late scores since the
    # previous checkpoint" read as they did live (its row only: its leaves are not replayed).
    previous = (
        Checkpoint.objects.using(SOURCE)
        .exclude(status="VOID")
        .filter(period_end__lte=spec.scratch_start)
        .order_by("-created_at")
        .first()
    )
    if previous is not None:
        previous.pk = None
        previous.save(using="default")
        counts["previous_checkpoint"] = 1
    # Rows were inserted with their live ids: move the sequences past them (PostgreSQL).
    statements = connection.ops.sequence_reset_sql(no_style(), [PredictionConfig, ParticipantModel, Input, Prediction])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return counts


def _copy_predictions_postgres(spec: ReplaySpec) -> int:
    """The bulk of the copy, PostgreSQL to PostgreSQL: COPY out of the live store (the reset to the
    predict worker's state done by the SELECT, as `reset_prediction` does it) straight into COPY
    in the scratch store."""
    table = Prediction._meta.db_table
    columns = [f.column for f in Prediction._meta.concrete_fields]
    reset = "(p.status = 'SCORED' OR (p.status = 'FAILED' AND p.failure_reason = ANY(%s)))"
    expressions = {
        "status": f"CASE WHEN {reset} THEN 'PENDING' ELSE p.status END",
        "failure_reason": f"CASE WHEN {reset} THEN '' ELSE p.failure_reason END",
        "failure_detail": f"CASE WHEN {reset} THEN '' ELSE p.failure_detail END",
    }
    reasons = sorted(str(r) for r in SCORE_WORKER_REASONS)
    select = ", ".join(expressions.get(c, f"p.{c}") for c in columns)
    query = (
        f"COPY (SELECT {select} FROM {table} p JOIN {Input._meta.db_table} i ON i.id = p.input_id "  # noqa: S608
        "WHERE p.performed_at >= %s AND p.performed_at < %s AND i.received_at >= %s AND i.received_at < %s) TO STDOUT"
    )
    params = [reasons] * 3 + [spec.scratch_start, spec.end, spec.scratch_start, spec.end]
    source, target = connections[SOURCE], connection
    source.ensure_connection()
    target.ensure_connection()
    with source.connection.cursor() as out_cursor, target.connection.cursor() as in_cursor:
        with (
            out_cursor.copy(query, params) as out,
            in_cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as into,
        ):
            for data in out:
                into.write(data)
        copied = in_cursor.rowcount
    return copied


# --- 2. events -------------------------------------------------------------------------------

# At one instant: a score batch first, then builds, voids, leaderboards (a batch's clock is taken
# before it writes, so whatever ran at the same instant saw it written).
ORDER = {"model": -1, "score": 0, "checkpoint": 1, "void": 2, "leaderboard": 3}


@dataclass(order=True)
class Event:
    at: datetime
    order: int
    kind: str = field(compare=False)
    live_id: int | None = field(default=None, compare=False)
    data: dict[str, Any] = field(default_factory=dict, compare=False)


def live_checkpoints(spec: ReplaySpec) -> list[Checkpoint]:
    """Live checkpoints (voided ones too) of periods wholly inside the scratch data."""
    return list(
        Checkpoint.objects.using(SOURCE)
        .filter(period_start__gte=spec.scratch_start, period_end__lte=spec.end)
        .order_by("created_at", "id")
    )


def live_leaderboards(spec: ReplaySpec) -> list[Leaderboard]:
    """The retained leaderboards computed within [start, end)."""
    return list(
        Leaderboard.objects.using(SOURCE)
        .filter(created_at__gte=spec.start, created_at__lt=spec.end)
        .order_by("created_at", "id")
    )


def live_events(spec: ReplaySpec) -> list[Event]:
    """What the live workers did in the range, and when, from stored rows alone."""
    events = [
        Event(at, ORDER["model"], "model", pk, {"status": status})
        for pk, at, status in ParticipantModel.objects.using(SOURCE).values_list("pk", "first_seen_at", "status")
    ]
    events += [
        Event(at, ORDER["score"], "score")
        for at in range_inputs(spec)
        .exclude(status=InputStatus.RECEIVED)
        .exclude(resolved_at__isnull=True)
        .order_by("resolved_at")
        .values_list("resolved_at", flat=True)
        .distinct()
    ]
    for checkpoint in live_checkpoints(spec):
        meta = checkpoint.meta or {}
        events.append(Event(checkpoint.created_at, ORDER["checkpoint"], "checkpoint", checkpoint.pk, meta))
        voided = meta.get("voided")
        if checkpoint.status == "VOID" and voided and voided.get("at"):
            events.append(Event(datetime.fromisoformat(voided["at"]), ORDER["void"], "void", checkpoint.pk, voided))
    events += [Event(b.created_at, ORDER["leaderboard"], "leaderboard", b.pk) for b in live_leaderboards(spec)]
    return sorted(events)


def coalesced(events: list[Event]) -> list[Event]:
    """Consecutive score events as one, at the last one's clock (see ReplaySpec.coalesce). Every
    Input of the group is due by then (next_attempt_at = its own unit's clock), an expiry decided
    past the grace stays past it, and no leaderboard, build or void falls inside a group, so the
    same scores exist at each of them and the same seals hold."""
    out: list[Event] = []
    for event in events:
        if event.kind == "score" and out and out[-1].kind == "score":
            out[-1] = event
        else:
            out.append(event)
    return out


def run_events(spec: ReplaySpec, events: list[Event]) -> dict[str, Any]:
    """Call the workers' services in the live order with the live clocks. Returns what was built:
    {"leaderboards": {live id: scratch id}, "checkpoints": {live id: scratch id}, "errors": [...]}."""
    built: dict[str, Any] = {"leaderboards": {}, "checkpoints": {}, "errors": [], "score_batches": 0}
    seconds: dict[str, float] = defaultdict(float)  # wall time by event kind
    built["seconds"] = seconds
    built["scored"], built["analyzed"] = 0, 0  # scores written, and how many there were at the last ANALYZE
    if spec.coalesce:
        events = coalesced(events)
    for event in events:
        started = time.perf_counter()
        _run_event(spec, event, built)
        seconds[event.kind] += time.perf_counter() - started
    return built


def analyze_scratch(tables: list[str]) -> None:
    """PostgreSQL: refresh the planner's statistics of freshly filled scratch tables. Autovacuum
    gets there too, but later: until then a leaderboard over a million scores is planned as over
    an empty table (a sort spilled to disk instead of a hash aggregate, about 2.5x slower)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(tables)}")


def _analyze_if_grown(built: dict[str, Any]) -> None:
    """Before an aggregate over the scores: ANALYZE them once they grew by a tenth since the last time."""
    if built["scored"] > built["analyzed"] * 1.1 + 1000:
        analyze_scratch([Score._meta.db_table, Snapshot._meta.db_table])
        built["analyzed"] = built["scored"]


def _run_event(spec: ReplaySpec, event: Event, built: dict[str, Any]) -> None:
    """One live event, replayed into `built`."""
    if event.kind == "model":
        ParticipantModel.objects.filter(pk=event.live_id).update(status=event.data["status"])
    elif event.kind == "score":
        while True:
            result = score_batch(worker="replay", batch=spec.batch, now=event.at)
            built["score_batches"] += 1
            built["scored"] += result.scored
            if result.claimed < spec.batch:
                break
    elif event.kind == "leaderboard":
        _analyze_if_grown(built)
        built["leaderboards"][event.live_id] = rebuild_leaderboard(now=event.at).pk
    elif event.kind == "checkpoint":
        _analyze_if_grown(built)
        live = Checkpoint.objects.using(SOURCE).get(pk=event.live_id)
        try:
            replayed = build_checkpoint(
                period=Period(live.period_start, live.period_end),
                readiness=event.data.get("readiness", ""),
                now=event.at,
                forced_by=event.data.get("forced_by", "") if event.data.get("forced") else "",
                forced_reason=event.data.get("forced_reason", ""),
            )
        except Exception as exc:  # reported as a difference, the replay goes on
            built["errors"].append(f"checkpoint {live.pk}: the build raised {type(exc).__name__}: {exc}")
            return
        built["checkpoints"][event.live_id] = replayed.pk
    elif event.kind == "void":
        scratch_id = built["checkpoints"].get(event.live_id)
        if scratch_id is not None:
            checkpoint_void(
                checkpoint=Checkpoint.objects.get(pk=scratch_id),
                reason=event.data.get("reason") or "replayed void",
                actor=event.data.get("actor") or "replay",
            )


# --- 3. compare ------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return canonical_json(value).decode()


def first_difference(stored: Any, replayed: Any, path: str = "") -> dict[str, Any] | None:
    """Where two JSON documents first differ (a path like `entries[2].coverage`), or None."""
    if isinstance(stored, dict) and isinstance(replayed, dict):
        for key in sorted(set(stored) | set(replayed)):
            if key not in stored or key not in replayed or _canonical(stored[key]) != _canonical(replayed[key]):
                return first_difference(stored.get(key), replayed.get(key), f"{path}.{key}" if path else key)
        return None
    if isinstance(stored, list) and isinstance(replayed, list) and len(stored) == len(replayed):
        for i, (a, b) in enumerate(zip(stored, replayed, strict=True)):
            if _canonical(a) != _canonical(b):
                return first_difference(a, b, f"{path}[{i}]")
        return None
    if _canonical(stored) == _canonical(replayed):
        return None
    return {"path": path, "stored": stored, "replayed": replayed}


SCORE_FIELDS = ("prediction_id", "model__model_id", "value", "result", "success", "failed_reason", "scored_at", "late")


def _scores(spec: ReplaySpec, using: str) -> Iterator[tuple]:
    return (
        Score.objects.using(using)
        .filter(performed_at__gte=spec.start, performed_at__lt=spec.end)
        .order_by("prediction_id")
        .values_list(*SCORE_FIELDS)
        .iterator(chunk_size=CHUNK)
    )


def _merge(left: Iterator[tuple], right: Iterator[tuple]) -> Iterator[tuple[tuple | None, tuple | None]]:
    """Pairs by the first item (prediction id), both streams sorted by it."""
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            yield a, None
            a = next(left, None)
        elif a is None or b[0] < a[0]:
            yield None, b
            b = next(right, None)
        else:
            yield a, b
            a, b = next(left, None), next(right, None)


def compare_scores(spec: ReplaySpec) -> dict[str, Any]:
    """Every Score of the range, stored against replayed (value, result, success, reason, scored_at,
    late), and per model the exact mean of the values that count (not late, not null)."""
    per_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"stored_sum": Decimal(0), "stored_n": 0, "replayed_sum": Decimal(0), "replayed_n": 0, "differ": 0}
    )
    compared = differ = 0
    examples = []
    for stored, replayed in _merge(_scores(spec, SOURCE), _scores(spec, "default")):
        compared += 1
        model_id = str((stored or replayed)[1])
        row = per_model[model_id]
        for side, score in (("stored", stored), ("replayed", replayed)):
            if score is not None and score[2] is not None and not score[7]:
                row[f"{side}_sum"] += exact(score[2])
                row[f"{side}_n"] += 1
        if (
            stored is None
            or replayed is None
            or _canonical(_comparable(stored, spec)) != _canonical(_comparable(replayed, spec))
        ):
            differ += 1
            row["differ"] += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    {"prediction_id": (stored or replayed)[0], "stored": _row(stored), "replayed": _row(replayed)}
                )
    models_out = {
        model_id: {
            "stored_score": exact_mean(row["stored_sum"], row["stored_n"]),
            "replayed_score": exact_mean(row["replayed_sum"], row["replayed_n"]),
            "stored_count": row["stored_n"],
            "replayed_count": row["replayed_n"],
            "scores_differ": row["differ"],
        }
        for model_id, row in sorted(per_model.items())
    }
    return {"compared": compared, "differ": differ, "examples": examples, "models": models_out}


def _comparable(score: tuple, spec: ReplaySpec) -> list:
    """A score's compared fields: all but the id; `scored_at` too unless units were coalesced."""
    fields = list(score[1:])
    if spec.coalesce:
        del fields[SCORE_FIELDS.index("scored_at") - 1]
    return fields


def _row(score: tuple | None) -> dict[str, Any] | None:
    if score is None:
        return None
    return dict(
        zip(SCORE_FIELDS[1:], [v.isoformat() if isinstance(v, datetime) else v for v in score[1:]], strict=True)
    )


def _snapshot_map(spec: ReplaySpec, using: str) -> dict[tuple[str, datetime], tuple[str, str]]:
    rows = (
        Snapshot.objects.using(using)
        .filter(period_start__gte=spec.start, period_start__lt=spec.end)
        .select_related("model")
        .order_by("period_start", "model__model_id")
    )
    return {(str(s.model.model_id), s.period_start): (_canonical(snapshot_document(s)), s.content_hash) for s in rows}


def compare_snapshots(spec: ReplaySpec) -> dict[str, Any]:
    """Snapshots of the range by natural key: the hashed document and the stored content_hash."""
    stored, replayed = _snapshot_map(spec, SOURCE), _snapshot_map(spec, "default")
    keys = sorted(set(stored) | set(replayed))
    differ = [k for k in keys if stored.get(k) != replayed.get(k)]
    return {
        "compared": len(keys),
        "differ": len(differ),
        "examples": [
            {
                "model_id": m,
                "period_start": p.isoformat(),
                "stored_hash": (stored.get((m, p)) or (None, None))[1],
                "replayed_hash": (replayed.get((m, p)) or (None, None))[1],
            }
            for m, p in differ[:EXAMPLES]
        ],
    }


def _ranks(entries: list[dict[str, Any]], key: str = "rank") -> dict[str, Any]:
    return {str(e["model_id"]): e.get(key) for e in entries}


def compare_leaderboards(spec: ReplaySpec, built: dict[int, int]) -> dict[str, Any]:
    """Each retained leaderboard of the range against the one replayed at its created_at."""
    boards = []
    for live in live_leaderboards(spec):
        replayed = Leaderboard.objects.filter(pk=built.get(live.pk)).first()
        if replayed is None:
            boards.append({"live_id": live.pk, "created_at": live.created_at.isoformat(), "identical": False})
            continue
        difference = first_difference(
            {"entries": live.entries, "meta": live.meta}, {"entries": replayed.entries, "meta": replayed.meta}
        )
        stored_ranks, replayed_ranks = _ranks(live.entries), _ranks(replayed.entries)
        boards.append(
            {
                "live_id": live.pk,
                "created_at": live.created_at.isoformat(),
                "identical": difference is None,
                **({"first_difference": difference} if difference else {}),
                "ranks": {
                    m: {"stored": stored_ranks.get(m), "replayed": replayed_ranks.get(m)}
                    for m in sorted(set(stored_ranks) | set(replayed_ranks))
                },
            }
        )
    return {"compared": len(boards), "differ": sum(not b["identical"] for b in boards), "boards": boards}


def _leaf_hashes(checkpoint: Checkpoint) -> list[str]:
    return list(checkpoint.leaves.order_by("position").values_list("leaf_hash", flat=True))


def _comparable_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (meta or {}).items() if k not in META_AFTER_BUILD}


def compare_checkpoints(spec: ReplaySpec, built: dict[int, int]) -> dict[str, Any]:
    """Each live checkpoint of a period inside [start, end) against its replayed build: ranking,
    emission, Merkle root, leaves, meta (less what was added after the build). Forced builds and
    builds before settled periods (leaf format 1 / no rules) are reported as such, never failed."""
    out = []
    for live in live_checkpoints(spec):
        if live.period_start < spec.start:
            continue
        meta = live.meta or {}
        if meta.get("forced"):
            category = "forced"
        elif int(meta.get("leaf_format") or 1) < 2 or not meta.get("rules"):
            category = "legacy"
        else:
            category = "settled"
        item: dict[str, Any] = {
            "live_id": live.pk,
            "period_start": live.period_start.isoformat(),
            "period_end": live.period_end.isoformat(),
            "status": live.status,
            "category": category,
            "stored_root": live.merkle_root,
        }
        replayed = Checkpoint.objects.filter(pk=built.get(live.pk)).first()
        if replayed is None:
            item.update(identical=False, root_identical=False, replayed_root=None, differences=["not rebuilt"])
            out.append(item)
            continue
        differences = []
        if _canonical(live.ranking) != _canonical(replayed.ranking):
            differences.append("ranking")
        if _canonical(live.emission) != _canonical(replayed.emission):
            differences.append("emission")
        if live.merkle_root != replayed.merkle_root:
            differences.append("merkle_root")
        if list(live.leaves.using(SOURCE).order_by("position").values_list("leaf_hash", flat=True)) != _leaf_hashes(
            replayed
        ):
            differences.append("leaves")
        live_meta, replayed_meta = _comparable_meta(meta), _comparable_meta(replayed.meta)
        for key in sorted(set(live_meta) | set(replayed_meta)):
            if _canonical(live_meta.get(key)) != _canonical(replayed_meta.get(key)):
                differences.append(f"meta.{key}")
        stored_items, replayed_items = _ranks(live.ranking), _ranks(replayed.ranking)
        stored_rewards, replayed_rewards = _ranks(live.ranking, "reward_pct"), _ranks(replayed.ranking, "reward_pct")
        item.update(
            identical=not differences,
            root_identical=live.merkle_root == replayed.merkle_root,
            replayed_root=replayed.merkle_root,
            differences=differences,
            models={
                m: {
                    "stored_rank": stored_items.get(m),
                    "replayed_rank": replayed_items.get(m),
                    "stored_reward_pct": stored_rewards.get(m),
                    "replayed_reward_pct": replayed_rewards.get(m),
                }
                for m in sorted(set(stored_items) | set(replayed_items))
            },
        )
        out.append(item)
    failing = [c for c in out if not c["identical"] and c["category"] == "settled"]
    return {"compared": len(out), "differ": len(failing), "checkpoints": out}


def compare_ground_truth(spec: ReplaySpec) -> dict[str, Any]:
    """With --reresolve: Inputs of the range whose re-resolved status or actuals differ from the
    stored ones (the tape changed since, or the resolver did)."""
    fields = ("id", "status", "actuals")

    def rows(using: str) -> dict[int, tuple]:
        query = Input.objects.using(using).filter(received_at__gte=spec.start, received_at__lt=spec.end)
        return {r[0]: (r[1], _canonical(r[2])) for r in query.values_list(*fields)}

    stored, replayed = rows(SOURCE), rows("default")
    changed = sorted(pk for pk in stored if stored[pk] != replayed.get(pk))
    return {
        "compared": len(stored),
        "changed": len(changed),
        "examples": [
            {"input_id": pk, "stored_status": stored[pk][0], "replayed_status": (replayed.get(pk) or (None,))[0]}
            for pk in changed[:EXAMPLES]
        ],
    }


def per_model_table(scores: dict[str, Any], leaderboards: dict[str, Any], checkpoints: dict[str, Any]) -> list[dict]:
    """One row per model: stored vs replayed score over the range, rank on the last leaderboard
    compared, and rank and reward in each checkpoint compared."""
    models_seen = set(scores["models"])
    last_board = leaderboards["boards"][-1] if leaderboards["boards"] else None
    if last_board:
        models_seen |= set(last_board.get("ranks", {}))
    for checkpoint in checkpoints["checkpoints"]:
        models_seen |= set(checkpoint.get("models", {}))
    rows = []
    for model_id in sorted(models_seen):
        score = scores["models"].get(model_id, {})
        board = (last_board or {}).get("ranks", {}).get(model_id, {})
        rows.append(
            {
                "model_id": model_id,
                "stored_score": score.get("stored_score"),
                "replayed_score": score.get("replayed_score"),
                "scores_differ": score.get("scores_differ", 0),
                "stored_leaderboard_rank": board.get("stored"),
                "replayed_leaderboard_rank": board.get("replayed"),
                "checkpoints": [
                    {"period_start": c["period_start"], **c["models"][model_id]}
                    for c in checkpoints["checkpoints"]
                    if model_id in c.get("models", {})
                ],
            }
        )
    return rows


def replay_in_scratch(spec: ReplaySpec) -> dict[str, Any]:
    """Copy, run the events, compare: the child process's whole job. Returns the report."""
    if (
        connection.settings_dict["NAME"]
        == connections[SOURCE].settings_dict["NAME"].removeprefix("file:").split("?")[0]
        and connection.vendor == connections[SOURCE].vendor
    ):
        raise RuntimeError("the scratch store is the live store: refusing to replay into it")
    if PredictionConfig.objects.exists() or Input.objects.exists() or Score.objects.exists():
        raise RuntimeError("the scratch store is not empty")
    started = datetime.now(tz=UTC)
    clock = time.perf_counter()
    copied = copy_live_rows(spec)
    analyze_scratch([m._meta.db_table for m in (ParticipantModel, PredictionConfig, Input, Prediction, FeedRecord)])
    copy_seconds = time.perf_counter() - clock
    events = live_events(spec)
    backtest = None
    if spec.backtest_models:
        from replay.backtest import run_models

        backtest = run_models(
            model_paths=list(spec.backtest_models), start=spec.start, end=spec.end, scope_key=spec.backtest_scope
        )
        events = sorted(
            events
            + [
                Event(
                    datetime.fromisoformat(backtest["first_seen"][model_id]),
                    ORDER["model"],
                    "model",
                    pk,
                    {"status": "ACTIVE"},
                )
                for model_id, pk in backtest["models"].items()
            ]
        )
    built = run_events(spec, events)
    clock = time.perf_counter()
    scores = compare_scores(spec)
    snapshots = compare_snapshots(spec)
    leaderboards = compare_leaderboards(spec, built["leaderboards"])
    checkpoints = compare_checkpoints(spec, built["checkpoints"])
    compare_seconds = time.perf_counter() - clock
    report = {
        "spec": spec.to_json(),
        "settings": {
            "SNAPSHOT_PERIOD_SECONDS": settings.SNAPSHOT_PERIOD_SECONDS,
            "CHECKPOINT_INTERVAL_SECONDS": settings.CHECKPOINT_INTERVAL_SECONDS,
            "GROUND_TRUTH_GRACE_SECONDS": settings.GROUND_TRUTH_GRACE_SECONDS,
            "SCORE_MAX_ATTEMPTS": settings.SCORE_MAX_ATTEMPTS,
            "CRUNCH_CONTRACT": settings.CRUNCH_CONTRACT,
            "MISSING_PREDICTION_POLICY": settings.MISSING_PREDICTION_POLICY,
            "SCORE_PASS": settings.SCORE_PASS,
            "SCORE_PASS_CAP_PERCENTILE": settings.SCORE_PASS_CAP_PERCENTILE,
            "slots": {k: v for k, v in settings.CALLABLE_OVERRIDES.items() if v},
        },
        "copied": copied,
        "events": {
            "score_times": sum(e.kind == "score" for e in events),
            "score_batches": built["score_batches"],
            "leaderboards": len(built["leaderboards"]),
            "checkpoints": len(built["checkpoints"]),
        },
        "errors": built["errors"],
        "scores": scores,
        "snapshots": snapshots,
        "leaderboards": leaderboards,
        "checkpoints": checkpoints,
        "models": per_model_table(scores, leaderboards, checkpoints),
        "unfinished_inputs": Input.objects.filter(status=InputStatus.RECEIVED).count(),
        "seconds": (datetime.now(tz=UTC) - started).total_seconds(),
        # Wall time by phase: the copy, each kind of replayed event, the comparison.
        "phase_seconds": {
            "copy": round(copy_seconds, 3),
            **{kind: round(value, 3) for kind, value in sorted(built["seconds"].items())},
            "compare": round(compare_seconds, 3),
        },
    }
    if spec.reresolve:
        report["ground_truth"] = compare_ground_truth(spec)
    if backtest is not None:
        from replay.backtest import backtest_section

        report["backtest"] = {
            "inputs": backtest["inputs"],
            "counts": backtest["counts"],
            "models": backtest_section(models=backtest["models"], start=spec.start, end=spec.end, using=SOURCE),
        }
    report["identical"] = not (
        scores["differ"] or snapshots["differ"] or leaderboards["differ"] or checkpoints["differ"] or built["errors"]
    )
    return report
