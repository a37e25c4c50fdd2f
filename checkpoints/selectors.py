"""Reads behind checkpoints: the period schedule, readiness and the period's ranking."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Min, QuerySet

from checkpoints.models import Checkpoint
from coordinator_site.contract import Aggregation, get_callable
from predictions.choices import InputStatus
from predictions.models import Input
from scoring.models import Snapshot

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
    last_end = Checkpoint.objects.order_by("-period_end").values_list("period_end", flat=True).first()
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


def open_input_count(period: Period) -> int:
    """Inputs scheduled in the period that are neither RESOLVED nor EXPIRED yet."""
    return Input.objects.filter(
        scheduled_for__gte=period.start, scheduled_for__lt=period.end, status=InputStatus.RECEIVED
    ).count()


def period_readiness(period: Period, *, now: datetime) -> tuple[bool, str]:
    """Whether a checkpoint may be built for `period` now, and why (or why not)."""
    if now < period.end:
        return False, "period not ended"
    open_inputs = open_input_count(period)
    if open_inputs == 0:
        return True, "inputs settled"
    if now >= period.end + timedelta(seconds=settings.CHECKPOINT_GRACE_SECONDS):
        return True, f"grace elapsed with {open_inputs} inputs unresolved"
    return False, f"{open_inputs} inputs unresolved"


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


def period_model_values(snapshots: list[Snapshot], *, value_field: str) -> dict[int, dict[str, Any]]:
    """Per model: the count-weighted mean of `result_summary[value_field]` over its snapshots.

    value = sum(summary[value_field] * summary["value_count"]) / sum(value_count), over the snapshots
    that have both; None when no snapshot has a scored value. Keyed by ParticipantModel pk, in
    first-seen order.
    """
    per_model: dict[int, dict[str, Any]] = {}
    for snapshot in snapshots:
        row = per_model.setdefault(
            snapshot.model_id,
            {"model": snapshot.model, "weighted": 0.0, "value_count": 0, "prediction_count": 0, "snapshot_count": 0},
        )
        row["snapshot_count"] += 1
        row["prediction_count"] += snapshot.prediction_count
        summary = snapshot.result_summary or {}
        value = finite_number(summary.get(value_field))
        count = summary.get("value_count")
        if value is None or isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            continue
        row["weighted"] += value * count
        row["value_count"] += count
    for row in per_model.values():
        row["value"] = row["weighted"] / row["value_count"] if row["value_count"] else None
    return per_model


def period_ranking(snapshots: list[Snapshot], aggregation: Aggregation) -> list[dict[str, Any]]:
    """The checkpoint ranking items of a period, ordered by LEADERBOARD_RANKER (the leaderboard's
    ranking routine) on the contract's ranking key, fed with the period's count-weighted value."""
    per_model = period_model_values(snapshots, value_field=aggregation.value_field)
    rows = {str(row["model"].model_id): row for row in per_model.values()}
    entries = [
        {"model_id": model_id, "metrics": {aggregation.ranking_key: row["value"]}} for model_id, row in rows.items()
    ]
    ranked = get_callable("LEADERBOARD_RANKER")(entries, aggregation)
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
    return items
