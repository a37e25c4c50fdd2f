"""Reads of scores, snapshots and leaderboards (for the leaderboard, checkpoints and reports)."""

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from coordinator_site.exact import ExactSum, exact_mean, exact_sum, parse_decimal
from scoring.aggregation import NOT_ASKED
from scoring.models import Leaderboard, Score, Snapshot


def leaderboard_latest() -> Leaderboard | None:
    """The newest leaderboard row (the current ranking), or None before the first rebuild."""
    return Leaderboard.objects.order_by("-created_at", "-id").first()


def window_aggregates(
    *, starts: dict[str, datetime], end: datetime, count_windows: set[str] | None = None
) -> dict[tuple[int, str], dict[str, dict[str, Any]]]:
    """Per (model pk, scope_key) and per window, sums and counts of the scores in [start, end].

    One GROUP BY over the Score table (index `score_window`) by (model, scope), with conditional
    aggregates per bucket between window starts (each row counted in one): `sum`/`n` (non-null Score.value; `sum` an exact
    Decimal, so sum / n is the same mean whatever the order of the rows), `asked` (every score
    except those that are nobody's fault: no ground truth, a poisoned Input) and `answered`
    (successful scores). Sums and counts add up exactly across scopes and windows, so callers
    never take a mean of means. Late scores (scored after their period was sealed) are left out,
    as they are from the checkpoints. `count_windows` limits asked/answered to those windows
    (the others report 0).
    """
    if not starts:
        return {}
    # The windows share their end, so they nest: the rows fall into disjoint buckets between
    # consecutive distinct starts (newest first), each row passes one bucket's filters and is
    # summed once (its exact decimal is the costly part), and a window is the exact sum of the
    # buckets from the newest to its own start.
    bounds = sorted(set(starts.values()), reverse=True)
    annotations: dict[str, Any] = {}
    for i, start in enumerate(bounds):
        inside = Q(performed_at__gte=start) if i == 0 else Q(performed_at__gte=start, performed_at__lt=bounds[i - 1])
        annotations[f"b{i}__sum"] = ExactSum("value", filter=inside)
        annotations[f"b{i}__n"] = Count("value", filter=inside)
        annotations[f"b{i}__asked"] = Count("id", filter=inside & ~Q(failed_reason__in=NOT_ASKED))
        annotations[f"b{i}__answered"] = Count("id", filter=inside & Q(success=True))
    rows = (
        Score.objects.filter(performed_at__gte=bounds[-1], performed_at__lte=end, late=False)
        .values("model_id", "scope_key")
        .annotate(**annotations)
        .order_by()
    )
    result: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        per_bucket = [
            (parse_decimal(row[f"b{i}__sum"]), row[f"b{i}__n"], row[f"b{i}__asked"], row[f"b{i}__answered"])
            for i in range(len(bounds))
        ]
        key = (row["model_id"], row["scope_key"])
        result[key] = {}
        for name, start in starts.items():
            inside = per_bucket[: bounds.index(start) + 1]
            counted = count_windows is None or name in count_windows
            result[key][name] = {
                "sum": exact_sum(b[0] for b in inside),
                "n": sum(b[1] for b in inside),
                "asked": sum(b[2] for b in inside) if counted else 0,
                "answered": sum(b[3] for b in inside) if counted else 0,
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
