"""Reads behind checkpoints: the period schedule, readiness and the period's ranking."""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Min, Q, QuerySet

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint
from coordinator_site.contract import Aggregation, Eligibility, EmissionPart, get_callable
from coordinator_site.exact import EXACT, exact, exact_mean, parse_decimal
from coordinator_site.models import WorkerHeartbeat
from predictions.choices import InputStatus
from predictions.models import LIVE_INPUTS, Input, PredictionConfig
from scoring.eligibility import apply_eligibility, rank_parts
from scoring.models import Score, Snapshot

# Periods are aligned to this Monday 00:00 UTC, so weekly checkpoints run Monday to Monday and
# any interval dividing a day lines up with midnight (and with epoch-aligned snapshot buckets).
PERIOD_ANCHOR = datetime(1970, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


def aligned_period(t: datetime, *, interval_seconds: int | None = None) -> Period:
    """The aligned half-open period [start, end) that contains `t`."""
    interval = interval_seconds or settings.CHECKPOINT_INTERVAL_SECONDS
    elapsed = (t - PERIOD_ANCHOR) // timedelta(seconds=1)
    start = PERIOD_ANCHOR + timedelta(seconds=(elapsed // interval) * interval)
    return Period(start, start + timedelta(seconds=interval))


def next_checkpoint_period() -> Period | None:
    """The first period without a checkpoint, from the database alone.

    After the newest checkpoint: [its period_end, the next aligned boundary). Before any
    checkpoint: the aligned period holding the first snapshot or input. None when there is no
    data at all yet.
    """
    last_end = (
        Checkpoint.objects.exclude(status=CheckpointStatus.VOID)
        .order_by("-period_end")
        .values_list("period_end", flat=True)
        .first()
    )
    if last_end is not None:
        return Period(last_end, aligned_period(last_end).end)
    firsts = [
        Snapshot.objects.aggregate(first=Min("period_start"))["first"],
        Input.objects.aggregate(first=Min("scheduled_for"))["first"],
    ]
    firsts = [t for t in firsts if t is not None]
    if not firsts:
        return None
    return aligned_period(min(firsts))


@dataclass
class Readiness:
    """Whether period P may be built, decided by stored progress (DESIGN.md §12), and why not.

    Ready when (1) every active config's schedule has moved past P's end — each slot before it
    served or recorded as missed, no claim on such a slot in flight — and (2) every Input whose
    predictions can land in P's snapshots (received during P: predictions and snapshots are
    keyed by that time) is RESOLVED or EXPIRED, which only the score worker decides. The clock
    only says whether P has ended and, after CHECKPOINT_GRACE_SECONDS, that a wait is overdue.
    """

    ready: bool
    reason: str
    waiting: list[str] = field(default_factory=list)
    overdue: bool = False


def _last_seen(worker: str) -> str:
    beat = WorkerHeartbeat.objects.filter(name=worker).order_by("-last_beat_at").values_list("last_beat_at", flat=True)
    last = beat.first()
    return f"{worker} last seen {last.isoformat(timespec='seconds')}" if last else f"{worker} never seen"


def period_readiness(period: Period, *, now: datetime) -> Readiness:
    """Whether a checkpoint may be built for `period` now; the reasons it waits otherwise."""
    if now < period.end:
        return Readiness(False, "period not ended")
    waiting = []
    behind = list(
        PredictionConfig.objects.filter(active=True)
        .filter(Q(next_run_at__lt=period.end) | Q(next_run_at__isnull=True))
        .order_by("scope_key")
        .values_list("scope_key", flat=True)[:5]
    )
    if behind:
        waiting.append(
            f"predict schedule not past the period end for {', '.join(behind)} ({_last_seen('run_predict')})"
        )
    # A tournament round's samples are not waited on: its scores land in the period open when
    # the round is scored (docs/tournament.md).
    open_inputs = Input.objects.filter(
        LIVE_INPUTS, status=InputStatus.RECEIVED, received_at__gte=period.start, received_at__lt=period.end
    ).count()
    if open_inputs:
        waiting.append(f"{open_inputs} input(s) not resolved or expired yet ({_last_seen('run_score')})")
    if not waiting:
        return Readiness(True, "settled: schedule past the period end, every input terminal")
    overdue = now >= period.end + timedelta(seconds=settings.CHECKPOINT_GRACE_SECONDS)
    reason = f"period {period.start.isoformat()} to {period.end.isoformat()} waits for: " + "; ".join(waiting)
    if overdue:
        reason = f"OVERDUE ({settings.CHECKPOINT_GRACE_SECONDS}s after its end): {reason}"
    return Readiness(False, reason, waiting, overdue)


def period_snapshots(period: Period) -> QuerySet[Snapshot]:
    """Snapshots whose bucket starts in the period, in Merkle leaf order (start, model_id, id)."""
    return (
        Snapshot.objects.filter(period_start__gte=period.start, period_start__lt=period.end)
        .select_related("model")
        .order_by("period_start", "model__model_id", "id")
    )


def finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def period_model_values(snapshots: list[Snapshot], *, value_field: str) -> dict[int, dict[str, Any]]:
    """Per model: the mean of `result_summary[value_field]` over its snapshots, exactly.

    value = sum(value_sum) / sum(value_count) over the snapshots that have a value, rounded
    once (the same scores give the leaderboard's value); a snapshot without `value_sum` (written
    before exact sums) counts as its mean times its count. None when no snapshot has a scored
    value. Keyed by ParticipantModel pk, in first-seen order.
    """
    per_model: dict[int, dict[str, Any]] = {}
    for snapshot in snapshots:
        row = per_model.setdefault(
            snapshot.model_id,
            {
                "model": snapshot.model,
                "total": Decimal(0),
                "value_count": 0,
                "prediction_count": 0,
                "snapshot_count": 0,
                "scored_count": 0,
                "by_scope": {},
            },
        )
        row["snapshot_count"] += 1
        row["prediction_count"] += snapshot.prediction_count
        summary = snapshot.result_summary or {}
        row["scored_count"] += _count(summary.get("answered"))
        for scope, stats in (summary.get("by_scope") or {}).items():
            acc = row["by_scope"].setdefault(scope, {"total": Decimal(0), "value_count": 0, "scored_count": 0})
            if _count(stats.get("value_count")):
                acc["total"] = EXACT.add(acc["total"], parse_decimal(stats.get("value_sum") or "0"))
                acc["value_count"] += _count(stats.get("value_count"))
            acc["scored_count"] += _count(stats.get("answered"))
        value = finite_number(summary.get(value_field))
        count = summary.get("value_count")
        if value is None or isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            continue
        total = summary.get("value_sum")
        part = parse_decimal(total) if total is not None else EXACT.multiply(exact(value), count)
        row["total"] = EXACT.add(row["total"], part)
        row["value_count"] += count
    for row in per_model.values():
        row["value"] = exact_mean(row.pop("total"), row["value_count"])
    return per_model


def part_stats(row: dict[str, Any], parts: list[EmissionPart]) -> dict[str, dict[str, Any]]:
    """Per split part: the exact mean and the scored count of a model's scores in the part's scopes."""
    result = {}
    for part in parts:
        total, n, scored = Decimal(0), 0, 0
        for scope in part.scope_keys:
            acc = row["by_scope"].get(scope)
            if acc:
                total = EXACT.add(total, acc["total"])
                n += acc["value_count"]
                scored += acc["scored_count"]
        result[part.name] = {"value": exact_mean(total, n) if n else None, "scored_count": scored}
    return result


def period_ranking(
    snapshots: list[Snapshot],
    aggregation: Aggregation,
    *,
    ranker=None,
    eligibility: dict[str, Any] | None = None,
    split: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The checkpoint ranking items of a period, ordered by LEADERBOARD_RANKER (the leaderboard's
    ranking routine; `ranker` to use a recorded one) on the ranking key, fed with the period's
    exact per-model value.

    `eligibility` (the rules recorded with the checkpoint: the contract's Eligibility plus
    `benchmark_model_ids`, the models flagged benchmark at build time) adds `is_benchmark`,
    `scored_count`, `eligible` and `ineligible_reasons` through the leaderboard's own
    `apply_eligibility`; `split` (the contract's emission parts) adds `parts`, each part ranked and
    judged on its own scopes (`result_summary.by_scope`). Without them the items are as before.
    """
    per_model = period_model_values(snapshots, value_field=aggregation.value_field)
    rows = {str(row["model"].model_id): row for row in per_model.values()}
    ranker = ranker or get_callable("LEADERBOARD_RANKER")
    rules = Eligibility.model_validate({k: v for k, v in (eligibility or {}).items() if k != "benchmark_model_ids"})
    benchmarks = set((eligibility or {}).get("benchmark_model_ids") or [])
    entries = [
        {
            "model_id": model_id,
            "cruncher_id": row["model"].cruncher_id,
            "is_benchmark": model_id in benchmarks,
            "scored_count": row["scored_count"],
            "metrics": {aggregation.ranking_key: row["value"]},
        }
        for model_id, row in rows.items()
    ]
    ranked = ranker(entries, aggregation)
    if eligibility is not None:
        ranked = apply_eligibility(ranked, rules)
    by_part = {}
    if split:
        parts = [EmissionPart.model_validate(part) for part in split]
        for entry in entries:
            entry["part_stats"] = part_stats(rows[entry["model_id"]], parts)
        by_part = rank_parts(entries, parts=parts, aggregation=aggregation, ranker=ranker, rules=rules)
    items = []
    for entry in ranked:
        row = rows[str(entry["model_id"])]
        model = row["model"]
        flags = []
        if entry.get("rank") is None:
            flags.append("UNRANKED")
        if model.cruncher_index is None:
            flags.append("NO_CRUNCHER_INDEX")
        items.append(
            {
                "model_id": str(model.model_id),
                "model_name": model.name,
                "cruncher_id": model.cruncher_id,
                "cruncher_name": model.cruncher_name,
                "cruncher_index": model.cruncher_index,
                "rank": entry.get("rank"),
                "value": row["value"],
                "value_count": row["value_count"],
                "prediction_count": row["prediction_count"],
                "snapshot_count": row["snapshot_count"],
                "reward_pct": None,
                "flags": flags,
            }
        )
        if eligibility is not None:
            items[-1].update(
                is_benchmark=entry["is_benchmark"],
                scored_count=entry["scored_count"],
                eligible=entry["eligible"],
                ineligible_reasons=entry["ineligible_reasons"],
            )
        if split:
            items[-1]["parts"] = {
                name: {**part, "reward_pct": None} for name, part in by_part[entry["model_id"]].items()
            }
    return items


def late_scores_of(checkpoint: Checkpoint, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Scores of the checkpoint's period that arrived after it was sealed (flagged late): listed on
    its page and in the API, never in a snapshot, a ranking or an emission."""
    rows = (
        Score.objects.filter(
            late=True, performed_at__gte=checkpoint.period_start, performed_at__lt=checkpoint.period_end
        )
        .order_by("performed_at", "prediction_id")
        .values_list("prediction_id", "model__model_id", "performed_at", "scored_at", "value")[:limit]
    )
    return [
        {"prediction_id": p, "model_id": str(m), "performed_at": t, "scored_at": at, "value": v}
        for p, m, t, at, v in rows
    ]
