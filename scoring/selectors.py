"""Reads of scores, snapshots and leaderboards (for the leaderboard, checkpoints and reports)."""

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from coordinator_site.exact import ExactSum, exact_mean, parse_decimal
from scoring.aggregation import NOT_ASKED
from scoring.models import Leaderboard, Score, Snapshot


def leaderboard_latest() -> Leaderboard | None:
    """The newest leaderboard row (the current ranking), or None before the first rebuild."""
    return Leaderboard.objects.order_by("-created_at", "-id").first()


def window_aggregates(
    *, starts: dict[str, datetime], end: datetime, count_windows: set[str] | None = None
) -> dict[tuple[int, str], dict[str, dict[str, Any]]]:
    """Per (model pk, scope_key) and per window, sums and counts of the scores in [start, end].

    One GROUP BY over the Score table (index `score_window`), one set of conditional aggregates
    per window: `sum`/`n` (non-null Score.value; `sum` an exact Decimal, so sum / n is the same
    mean whatever the order of the rows), `asked` (every score except those that are nobody's
    fault: no ground truth, a poisoned Input) and `answered` (successful scores). Sums and counts
    add up exactly across scopes and windows, so callers never take a mean of means. Late scores
    (scored after their period was sealed) are left out, as they are from the checkpoints. `count_windows` limits asked/answered to those windows (the others report 0),
    which keeps the aggregate close to the cost of the bare means.
    """
    if not starts:
        return {}
    earliest = min(starts.values())
    annotations: dict[str, Any] = {}
    for name, start in starts.items():
        inside = Q(performed_at__gte=start)
        annotations[f"{name}__sum"] = ExactSum("value", filter=inside)
        annotations[f"{name}__n"] = Count("value", filter=inside)
        if count_windows is None or name in count_windows:
            annotations[f"{name}__asked"] = Count("id", filter=inside & ~Q(failed_reason__in=NOT_ASKED))
            annotations[f"{name}__answered"] = Count("id", filter=inside & Q(success=True))
    rows = (
        Score.objects.filter(performed_at__gte=earliest, performed_at__lte=end, late=False)
        .values("model_id", "scope_key")
        .annotate(**annotations)
        .order_by()
    )
    result: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        result[(row["model_id"], row["scope_key"])] = {
            name: {
                "sum": parse_decimal(row.get(f"{name}__sum")),
                **{stat: int(row.get(f"{name}__{stat}") or 0) for stat in ("n", "asked", "answered")},
            }
            for name in starts
        }
    return result


def model_aggregates(*, start: datetime, end: datetime) -> dict[int, dict[str, float | int | None]]:
    """Per model pk over scores performed in [start, end): mean value, value_count, asked, answered, coverage.

    The same count-weighted SQL aggregate as the leaderboard windows, for a fixed period
    (e.g. a checkpoint period).
    """
    rows = (
        Score.objects.filter(performed_at__gte=start, performed_at__lt=end, late=False)
        .values("model_id")
        .annotate(
            total=ExactSum("value"),
            n=Count("value"),
            asked=Count("id", filter=~Q(failed_reason__in=NOT_ASKED)),
            answered=Count("id", filter=Q(success=True)),
        )
        .order_by()
    )
    return {
        row["model_id"]: {
            "value": exact_mean(row["total"], row["n"]),
            "value_count": row["n"],
            "asked": row["asked"],
            "answered": row["answered"],
            "coverage": row["answered"] / row["asked"] if row["asked"] else None,
        }
        for row in rows
    }


def snapshot_series(*, model_id: str, start: datetime | None = None, end: datetime | None = None) -> QuerySet[Snapshot]:
    """One model's snapshots (by the orchestrator's model_id) with period_start in [start, end), oldest first."""
    qs = Snapshot.objects.filter(model__model_id=model_id)
    if start is not None:
        qs = qs.filter(period_start__gte=start)
    if end is not None:
        qs = qs.filter(period_start__lt=end)
    return qs.order_by("period_start")


def score_series(
    *,
    model_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    scope_key: str | None = None,
) -> QuerySet:
    """One model's per-prediction scores in [start, end) of performed_at, oldest first (for charts).

    Rows are dicts: performed_at, scope_key, value, success, failed_reason, input_id, prediction_id.
    """
    qs = Score.objects.filter(model__model_id=model_id)
    if start is not None:
        qs = qs.filter(performed_at__gte=start)
    if end is not None:
        qs = qs.filter(performed_at__lt=end)
    if scope_key is not None:
        qs = qs.filter(scope_key=scope_key)
    return qs.order_by("performed_at", "id").values(
        "performed_at", "scope_key", "value", "success", "failed_reason", "input_id", "prediction_id"
    )


def seconds_until_next_resolvable(*, now: datetime) -> float | None:
    """Seconds until a RECEIVED Input is due for scoring (resolvable, not backing off, not leased
    elsewhere); None without one. What run_score sleeps when idle."""
    from predictions.choices import InputStatus
    from predictions.models import LIVE_INPUTS, Input

    rows = Input.objects.filter(LIVE_INPUTS, status=InputStatus.RECEIVED).values_list(
        "resolvable_at", "next_attempt_at", "lease_until"
    )[:10_000]
    due = [max(t for t in times if t is not None) for times in rows]
    return (min(due) - now).total_seconds() if due else None
