"""Reads behind the HTML pages: bounded, index-backed, a fixed number of queries per page.

Nothing here counts a big table to paginate it: lists are keyset-paginated on their ordering
index ("newer"/"older" links), and only the queue depths of the health page are counts, each
over a partial index that holds just the queue.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from checkpoints.models import Checkpoint
from checkpoints.selectors import next_checkpoint_period, period_readiness
from coordinator_site.contract import get_contract
from coordinator_site.health import RED, NodeHealth
from feeds import selectors as tape
from feeds.dims import FeedDims, record_price
from feeds.models import FeedIngestionState
from monitoring import health as monitoring_health
from monitoring.health import current_health
from predictions.choices import InputStatus, PredictionStatus
from predictions.models import LIVE_INPUTS, Input, ParticipantModel, Prediction, PredictionConfig
from predictions.selectors import predictions_list
from scoring.models import Leaderboard, Snapshot

SPARKLINE_PERIODS = 48
MODEL_CHART_DAYS = 7
TAPE_CHART_RECORDS = 240


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# --- Health (computed in monitoring.health; the page only reads it) ------------------------


def health_overview() -> NodeHealth:
    """The node's health verdict, the same one `/healthz`, `/reports/health` and `/metrics` read."""
    return current_health()


def live_process_counts(*, now: datetime) -> dict[str, int]:
    """Per worker name, how many processes beat within 1.5 times their own cadence."""
    return monitoring_health.live_process_counts(now=now)


def next_checkpoint_readiness(*, now: datetime):
    """(ended periods without a checkpoint, the next period's Readiness or None without data)."""
    period = next_checkpoint_period()
    if period is None:
        return 0, None
    return _unbuilt(period, now), period_readiness(period, now=now)


def _unbuilt(period, now: datetime) -> int:
    if now < period.end:
        return 0
    return 1 + int((now - period.end) // timedelta(seconds=settings.CHECKPOINT_INTERVAL_SECONDS))


def unbuilt_checkpoint_periods(*, now: datetime) -> int:
    """Ended checkpoint periods after the newest checkpoint (or since the first data) with no checkpoint."""
    period = next_checkpoint_period()
    return 0 if period is None else _unbuilt(period, now)


def queue_depths(*, now: datetime) -> dict[str, int]:
    """The backlog of each stage; each count runs over a partial index that holds only the queue."""
    return {
        "pending_predictions": Prediction.objects.filter(status=PredictionStatus.PENDING).count(),
        "overdue_inputs": Input.objects.filter(
            LIVE_INPUTS, status=InputStatus.RECEIVED, resolvable_at__lte=now
        ).count(),
        "unbuilt_checkpoint_periods": unbuilt_checkpoint_periods(now=now),
    }


# --- Leaderboard ------------------------------------------------------------------------------


def leaderboard_rows(board: Leaderboard | None) -> list[dict[str, Any]]:
    """The board's entries ordered by rank (unranked last), metrics made finite-or-None."""
    if board is None:
        return []
    rows = []
    for entry in board.entries or []:
        rank = entry.get("rank")
        rows.append(
            {
                "model_id": str(entry.get("model_id")),
                "model_name": entry.get("model_name") or "",
                "cruncher_name": entry.get("cruncher_name") or entry.get("cruncher_id") or "",
                "rank": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
                "metrics": {str(k): _finite(v) for k, v in (entry.get("metrics") or {}).items()},
                "coverage": _finite(entry.get("coverage")),
                "prediction_count": entry.get("prediction_count"),
                "scored_count": entry.get("scored_count"),
                "is_benchmark": bool(entry.get("is_benchmark")),
                "eligible": bool(entry.get("eligible", rank is not None)),
                "ineligible_reasons": ", ".join(entry.get("ineligible_reasons") or []),
            }
        )
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["model_id"]))
    return rows


def score_trends(model_ids: list[str], *, until: datetime) -> dict[str, list[float | None]]:
    """Per model_id, the snapshot values of the last SPARKLINE_PERIODS periods, oldest first (1 query)."""
    if not model_ids:
        return {}
    value_field = get_contract().aggregation.value_field
    since = until - timedelta(seconds=settings.SNAPSHOT_PERIOD_SECONDS * SPARKLINE_PERIODS)
    rows = (
        Snapshot.objects.filter(model__model_id__in=model_ids, period_start__gte=since, period_start__lte=until)
        .order_by("period_start")
        .values_list("model__model_id", "result_summary")
    )
    trends: dict[str, list[float | None]] = {}
    for model_id, summary in rows:
        trends.setdefault(model_id, []).append(_finite((summary or {}).get(value_field)))
    return trends


# --- Model ------------------------------------------------------------------------------------


def model_window_series(model: ParticipantModel) -> list[tuple[str, list[tuple[datetime, float | None]]]]:
    """Each aggregation window's score over time for one model, from its own snapshots.

    At every snapshot period end t of the last MODEL_CHART_DAYS (before its newest snapshot), the
    window value is the count-weighted mean of the snapshot values over [t - window, t): the
    leaderboard's definition, recomputed from this model's snapshots only (2 queries).
    """
    aggregation = get_contract().aggregation
    newest = Snapshot.objects.filter(model=model).order_by("-period_start").values_list("period_end", flat=True).first()
    if newest is None:
        return []
    longest = max(timedelta(hours=w.hours) for w in aggregation.windows.values())
    chart_start = newest - timedelta(days=MODEL_CHART_DAYS)
    snapshots = list(
        Snapshot.objects.filter(model=model, period_start__gte=chart_start - longest)
        .order_by("period_start")
        .values_list("period_start", "period_end", "result_summary")
    )
    weighted = []
    for start, end, summary in snapshots:
        summary = summary or {}
        value = _finite(summary.get(aggregation.value_field))
        count = summary.get("value_count")
        if not isinstance(count, int) or isinstance(count, bool):
            count = 1 if value is not None else 0
        weighted.append((start, end, value, count))
    series = []
    ends = [end for _, end, _, _ in weighted if end >= chart_start]
    for name, window in aggregation.windows.items():
        span = timedelta(hours=window.hours)
        points: list[tuple[datetime, float | None]] = []
        for t in ends:
            total = n = 0.0
            for start, end, value, count in weighted:
                if start >= t - span and end <= t and value is not None and count > 0:
                    total += value * count
                    n += count
            points.append((t, total / n if n else None))
        series.append((name, points))
    return series


# --- Predictions ------------------------------------------------------------------------------


class BadCursor(ValueError):
    """A pagination cursor that is not `<epoch microseconds>.<id>`."""


def encode_cursor(t: datetime, pk: int) -> str:
    return f"{round(t.timestamp() * 1_000_000)}.{pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """`<epoch microseconds>.<id>` -> (time, id); raises BadCursor with what was wrong."""
    us, sep, pk = cursor.partition(".")
    if not sep or not us.lstrip("-").isdigit() or not pk.isdigit():
        raise BadCursor(f"cursor {cursor!r} is not '<epoch microseconds>.<id>'")
    try:
        t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))
    except OverflowError:
        raise BadCursor(f"cursor {cursor!r} is out of range") from None
    return t, int(pk)


@dataclass
class KeysetPage:
    rows: list[Any]
    newer: str | None  # cursor for the page before (newer rows), None on the first page
    older: str | None  # cursor for the page after (older rows), None on the last page


def keyset_page(
    qs: QuerySet, *, time_field: str, size: int, before: str | None = None, after: str | None = None
) -> KeysetPage:
    """One page of `qs` newest first on (time_field, id), fetched with LIMIT size+1 and no COUNT.

    `before` (older than the cursor) and `after` (newer than the cursor) come from the links of
    the previous page; raises BadCursor for a malformed one.
    """
    if after:
        t, pk = decode_cursor(after)
        newer_q = Q(**{f"{time_field}__gt": t}) | Q(**{time_field: t, "id__gt": pk})
        rows = list(qs.filter(newer_q).order_by(time_field, "id")[: size + 1])
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
        has_older = True
    else:
        if before:
            t, pk = decode_cursor(before)
            qs = qs.filter(Q(**{f"{time_field}__lt": t}) | Q(**{time_field: t, "id__lt": pk}))
        rows = list(qs.order_by(f"-{time_field}", "-id")[: size + 1])
        has_older = len(rows) > size
        rows = rows[:size]
        has_newer = bool(before)
    if not rows:
        return KeysetPage(rows, None, None)
    first, last = rows[0], rows[-1]
    return KeysetPage(
        rows,
        encode_cursor(getattr(first, time_field), first.pk) if has_newer else None,
        encode_cursor(getattr(last, time_field), last.pk) if has_older else None,
    )


def prediction_list(
    *,
    model_id: str = "",
    scope_key: str = "",
    status: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Prediction]:
    """predictions.selectors.predictions_list, joined to model and score instead of the Input
    (whose raw_data the pages never show), loading only the columns the tables print."""
    qs = predictions_list(
        model_ids=[model_id] if model_id else None, scope_key=scope_key, status=status, start=since, end=until
    )
    return (
        qs.select_related(None)
        .select_related("model", "score")
        .only(
            "id",
            "scope_key",
            "status",
            "failure_reason",
            "failure_detail",
            "output",
            "exec_time_us",
            "performed_at",
            "resolvable_at",
            "model__model_id",
            "model__name",
            "score__value",
            "score__success",
        )
    )


def model_choices() -> list[tuple[str, str]]:
    return [
        (model_id, f"{name or model_id} ({model_id})")
        for model_id, name in ParticipantModel.objects.order_by("model_id").values_list("model_id", "name")
    ]


def config_choices() -> list[tuple[str, str]]:
    return [
        (key, key)
        for key in PredictionConfig.objects.order_by("order", "scope_key").values_list("scope_key", flat=True)
    ]


# --- Feeds ------------------------------------------------------------------------------------


def feed_overview(*, now: datetime) -> list[dict[str, Any]]:
    """Per stream: feeds' summary (counts, bounds, watermark), health level, lag and recent prices.

    Builds on `feeds.selectors.feed_summaries()` (record counts kept on the ingestion state, no
    COUNT(*) over the tape); one more query per stream for the chart's recent records.
    """
    states = {
        FeedDims(s.source, s.subject, s.kind, s.granularity): s
        for s in FeedIngestionState.objects.order_by("source", "subject", "kind", "granularity")
    }
    rows = []
    for summary in tape.feed_summaries():
        dims = FeedDims(summary["source"], summary["subject"], summary["kind"], summary["granularity"])
        state = states.get(dims)
        recent = tape.latest(dims, TAPE_CHART_RECORDS)
        newest = summary["newest_ts"]
        if state:
            check = monitoring_health.feed_check(state, now=now)
            level, reason = check.level, check.reason
        else:
            level, reason = RED, "no ingestion state: run_feed has not polled it"
        rows.append(
            {
                **summary,
                "dims": dims,
                "label": str(dims),
                "state": state,
                "level": level,
                "reason": reason,
                "lag": now - newest if newest else None,
                "last_price": record_price(dims.kind, recent[-1].values) if recent else None,
                "prices": [(r.ts_event, record_price(dims.kind, r.values)) for r in recent],
            }
        )
    return rows


# --- Checkpoints ------------------------------------------------------------------------------


def checkpoint_list() -> QuerySet[Checkpoint]:
    """Checkpoints without their big JSON columns (ranking, emission, meta), for keyset pages."""
    return Checkpoint.objects.defer("ranking", "emission", "meta")


def checkpoint_detail(checkpoint_id: int) -> tuple[Checkpoint, list, int] | None:
    """(checkpoint, its transitions oldest first, its Merkle leaf count), or None (3 queries)."""
    checkpoint = Checkpoint.objects.filter(pk=checkpoint_id).first()
    if checkpoint is None:
        return None
    transitions = list(checkpoint.transitions.order_by("at", "id"))
    return checkpoint, transitions, checkpoint.leaves.count()
