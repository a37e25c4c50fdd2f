"""Reads behind the report API and the HTML pages (both use these; keep them general).

Everything here returns plain data or querysets that are already ordered; callers bound them
(limit, time range, cursor). Numbers read from JSON columns go through `json_safe`, so a
response can never carry NaN, Infinity or a Decimal.
"""

import json
import math
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Avg, BigIntegerField, Count, Func, Max, Q, QuerySet

from checkpoints.models import Checkpoint
from coordinator_site.contract import get_contract
from coordinator_site.models import WorkerHeartbeat
from feeds.models import FeedRecord
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from scoring.models import Leaderboard, Score, Snapshot
from scoring.selectors import leaderboard_latest


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None and Decimals turned into floats."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def finite_number(value: Any) -> float | None:
    """A JSON-safe float, or None for anything that is not a finite number (bools included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def numeric_fields(doc: dict | None) -> dict[str, float | int]:
    """The top-level finite numeric fields of a JSON document (e.g. a snapshot's result_summary)."""
    out: dict[str, float | int] = {}
    for key, value in (doc or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            out[str(key)] = value
        else:
            number = finite_number(value)
            if number is not None:
                out[str(key)] = number
    return out


# --- Leaderboard --------------------------------------------------------------------------


def leaderboard_head() -> tuple[int, datetime] | None:
    """(id, created_at) of the newest leaderboard, without loading its entries."""
    return Leaderboard.objects.order_by("-created_at", "-id").values_list("id", "created_at").first()


def leaderboard_rows(*, leaderboard_id: int | None = None) -> list[dict[str, Any]]:
    """Rows of the newest leaderboard (or of `leaderboard_id`), ordered by rank, unranked last.

    Each row: created_at, model_id (str), model_name, cruncher_id, cruncher_name, rank,
    score_metrics {window: float|None}, score_ranking {key, value, direction}, every window's
    value flattened at the top level, coverage, prediction_count, scored_count, and the payout
    eligibility: is_benchmark, eligible, ineligible_reasons, parts {name: {rank, value,
    scored_count, eligible, ineligible_reasons}} (empty without an emission split).
    """
    board = (
        Leaderboard.objects.filter(pk=leaderboard_id).first() if leaderboard_id is not None else leaderboard_latest()
    )
    if board is None:
        return []
    aggregation = get_contract().aggregation
    rows = []
    for entry in board.entries or []:
        metrics = {str(k): finite_number(v) for k, v in (entry.get("metrics") or {}).items()}
        ranking = entry.get("score_ranking") or {}
        rank = entry.get("rank")
        rows.append(
            {
                "created_at": board.created_at,
                "model_id": str(entry.get("model_id")),
                "model_name": entry.get("model_name") or "",
                "cruncher_id": str(entry.get("cruncher_id") or ""),
                "cruncher_name": entry.get("cruncher_name") or "",
                "rank": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
                "score_metrics": metrics,
                "score_ranking": {
                    "key": ranking.get("key") or aggregation.ranking_key,
                    "value": finite_number(ranking.get("value")),
                    "direction": ranking.get("direction") or aggregation.ranking_direction,
                },
                **metrics,
                "coverage": finite_number(entry.get("coverage")),
                "prediction_count": int(entry.get("prediction_count") or 0),
                "scored_count": int(entry.get("scored_count") or 0),
                **eligibility_fields(entry, ranked=isinstance(rank, int)),
            }
        )
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["model_id"]))
    return rows


def eligibility_fields(entry: dict[str, Any], *, ranked: bool) -> dict[str, Any]:
    """`is_benchmark`, `eligible`, `ineligible_reasons` and `parts` of a leaderboard entry
    (docs/rules.md). A board written before eligibility rules: ranked means eligible."""
    parts = {}
    for name, part in (entry.get("parts") or {}).items():
        part_rank = part.get("rank")
        parts[str(name)] = {
            "rank": part_rank if isinstance(part_rank, int) and not isinstance(part_rank, bool) else None,
            "value": finite_number(part.get("value")),
            "scored_count": int(part.get("scored_count") or 0),
            "eligible": bool(part.get("eligible")),
            "ineligible_reasons": [str(r) for r in part.get("ineligible_reasons") or []],
        }
    return {
        "is_benchmark": bool(entry.get("is_benchmark")),
        "eligible": bool(entry.get("eligible", ranked)),
        "ineligible_reasons": [str(r) for r in entry.get("ineligible_reasons") or ([] if ranked else ["unranked"])],
        "parts": parts,
    }


# --- Models -------------------------------------------------------------------------------


def models() -> QuerySet[ParticipantModel]:
    """All participant models ordered by model_id, without their big JSON columns."""
    return ParticipantModel.objects.defer("overall_score", "scores_by_scope", "meta").order_by("model_id")


def model_score_series(
    *, model_ids: Iterable[str] | None, start: datetime, end: datetime, by_scope: bool = False
) -> list[dict[str, Any]]:
    """Window means of Score.value per model (and per scope_key when `by_scope`), in one query.

    Each contract window covers [max(start, end - window), end). Rows: model_id, scope_key (if
    by_scope), score_metrics {window: float|None}, score_ranking, every window flattened,
    score_count, performed_at (the newest scored prediction). Ordered by model_id, scope_key.
    Models without a score value in [start, end) have no row.
    """
    aggregation = get_contract().aggregation
    qs = Score.objects.filter(performed_at__gte=start, performed_at__lt=end, value__isnull=False)
    if model_ids:
        qs = qs.filter(model__model_id__in=list(model_ids))
    group = ["model__model_id", "scope_key"] if by_scope else ["model__model_id"]
    windows = {}
    for name, window in aggregation.windows.items():
        window_start = max(start, end - timedelta(hours=window.hours))
        windows[f"w__{name}"] = Avg("value", filter=Q(performed_at__gte=window_start))
    rows = (
        qs.values(*group)
        .annotate(score_count=Count("id"), last_performed_at=Max("performed_at"), **windows)
        .order_by(*group)
    )
    configs = {}
    if by_scope:
        configs = {
            c.scope_key: c
            for c in PredictionConfig.objects.only("scope_key", "scope_template", "horizon_seconds", "interval_seconds")
        }
    out = []
    for row in rows:
        metrics = {name: finite_number(row[f"w__{name}"]) for name in aggregation.windows}
        item: dict[str, Any] = {"model_id": row["model__model_id"]}
        if by_scope:
            scope_key = row["scope_key"]
            config = configs.get(scope_key)
            scope = dict(config.scope_template) if config else {}
            scope.setdefault("scope_key", scope_key)
            if config:
                scope.setdefault("horizon_seconds", config.horizon_seconds)
                scope.setdefault("step_seconds", config.interval_seconds)
            item.update(
                {
                    "scope_key": scope_key,
                    "scope": json_safe(scope),
                    # The reference UI filters and groups chart series by these three properties.
                    "subject": str(scope.get("subject", "")),
                    "horizon": scope.get("horizon_seconds"),
                    "param": scope_key,
                }
            )
        item.update(
            {
                "score_metrics": metrics,
                "score_ranking": {
                    "key": aggregation.ranking_key,
                    "value": metrics.get(aggregation.ranking_key),
                    "direction": aggregation.ranking_direction,
                },
                **metrics,
                "score_count": row["score_count"],
                "performed_at": row["last_performed_at"],
            }
        )
        out.append(item)
    return out


# --- Snapshots ------------------------------------------------------------------------------


def snapshots() -> QuerySet[Snapshot]:
    """Snapshots with their model_id joined (select_related), newest period first."""
    return Snapshot.objects.select_related("model").order_by("-period_start", "-id")


def snapshot_series(*, model_ids: Iterable[str] | None, start: datetime, end: datetime) -> QuerySet[Snapshot]:
    """Snapshots whose period ended in (start, end], oldest first: the metrics chart series."""
    qs = Snapshot.objects.select_related("model").filter(period_end__gt=start, period_end__lte=end)
    if model_ids:
        qs = qs.filter(model__model_id__in=list(model_ids))
    return qs.order_by("period_end", "id")


# --- Predictions ----------------------------------------------------------------------------


def predictions() -> QuerySet[Prediction]:
    """Predictions, newest first; read a page of them with `prediction_rows`."""
    return Prediction.objects.order_by("-performed_at", "-id")


class EpochMicros(Func):
    """A timestamptz as integer microseconds since the epoch (PostgreSQL), exact.

    psycopg's timestamptz parsing costs more than the rest of a predictions page; an integer
    travels and converts for almost nothing (as in feeds.selectors.latest_values).
    """

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::int8"
    output_field = BigIntegerField()


# The columns of one /reports/predictions row, in the order `prediction_rows` returns them,
# followed by performed_at, resolvable_at and the score's scored_at (aware datetimes or None).
PREDICTION_ROW_COLUMNS = (
    "id",
    "model__model_id",
    "config_id",
    "scope_key",
    "input__scope",
    "input_id",
    "status",
    "failure_reason",
    "failure_detail",
    "output",
    "exec_time_us",
    "score__value",
    "score__success",
    "score__failed_reason",
)
_PREDICTION_TIMES = ("performed_at", "resolvable_at", "score__scored_at")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def prediction_rows(queryset: QuerySet[Prediction], *, limit: int) -> list[tuple]:
    """The first `limit` predictions of `queryset` (already filtered and ordered) as plain tuples.

    One query with exactly the shown columns (model, input scope and score joined), no model
    instances: each value of PREDICTION_ROW_COLUMNS, then the three timestamps.
    """
    if connection.vendor != "postgresql":
        return list(queryset.values_list(*PREDICTION_ROW_COLUMNS, *_PREDICTION_TIMES)[:limit])
    micros = {f"_us{i}": EpochMicros(name) for i, name in enumerate(_PREDICTION_TIMES)}
    rows = queryset.annotate(**micros).values_list(*PREDICTION_ROW_COLUMNS, *micros)[:limit]
    epoch, delta = _EPOCH, timedelta
    return [
        (
            *row[:-3],
            epoch + delta(microseconds=row[-3]),
            epoch + delta(microseconds=row[-2]),
            None if row[-1] is None else epoch + delta(microseconds=row[-1]),
        )
        for row in rows
    ]


def _naive_utc_sql(column: str) -> str:
    """SQL for Python's `isoformat()` of a timestamptz in UTC without offset (no fraction when
    the microseconds are 0, as Python writes it)."""
    # One to_char and a replace (the fraction is the only place ".000000" can occur).
    return f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '')"


_PREDICTION_JSON_PG = """
    SELECT row_to_json(j)::text{cursor_columns}
    FROM {prediction} p
    JOIN {model} m ON m.id = p.model_id
    JOIN {input} i ON i.id = p.input_id
    LEFT JOIN {score} s ON s.prediction_id = p.id
    CROSS JOIN LATERAL (SELECT
        p.id,
        m.model_id,
        p.config_id::text AS prediction_config_id,
        p.scope_key,
        CASE WHEN jsonb_typeof(i.scope) = 'object' AND i.scope ? 'horizon_seconds'
                  AND NOT i.scope ? 'resolve_horizon_seconds'
             THEN i.scope || jsonb_build_object('resolve_horizon_seconds', i.scope -> 'horizon_seconds')
             ELSE i.scope END AS scope,
        p.input_id,
        p.status,
        p.failure_reason,
        p.failure_detail,
        p.output,
        p.exec_time_us,
        {performed_at} AS performed_at,
        {resolvable_at} || 'Z' AS resolvable_at,
        CASE WHEN s.value IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE s.value END AS score_value,
        COALESCE(s.success, false) AS score_success,
        NOT COALESCE(s.success, false) AS score_failed,
        CASE WHEN s.id IS NULL THEN COALESCE(NULLIF(p.failure_reason, ''), 'Prediction not scored')
             ELSE s.failed_reason END AS score_failed_reason,
        CASE WHEN s.id IS NULL THEN NULL ELSE {scored_at} END AS scored_at
    ) j
    WHERE p.id IN ({page})
    ORDER BY p.performed_at {direction}, p.id {direction}
"""


def prediction_json_rows(queryset: QuerySet[Prediction], *, limit: int) -> list[tuple[str, datetime, int]]:
    """PostgreSQL: the first `limit` predictions of `queryset` (filtered, ordered by performed_at)
    as (the /reports/predictions row as JSON text, performed_at, id).

    The database writes the JSON: a page of a million-row history then costs one query and no
    per-row Python (the same row as `prediction_rows` + the serializer's `prediction_row` build
    on SQLite; tests compare the two).
    """
    from scoring.models import Score

    descending = str(queryset.query.order_by[0]).startswith("-")
    try:
        page_sql, params = queryset.values_list("pk", flat=True)[:limit].query.sql_with_params()
    except EmptyResultSet:  # e.g. filtered by model ids none of which exists
        return []
    sql = _PREDICTION_JSON_PG.format(
        performed_at=_naive_utc_sql("p.performed_at"),
        resolvable_at=_naive_utc_sql("p.resolvable_at"),
        scored_at=_naive_utc_sql("s.scored_at"),
        prediction=Prediction._meta.db_table,
        model=ParticipantModel._meta.db_table,
        input=Input._meta.db_table,
        score=Score._meta.db_table,
        page=page_sql,
        direction="DESC" if descending else "ASC",
        cursor_columns=", (EXTRACT(EPOCH FROM p.performed_at) * 1000000)::int8, p.id",
    )
    with _server_binding_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    epoch, delta = _EPOCH, timedelta
    return [(text, epoch + delta(microseconds=micros), pk) for text, micros, pk in rows]


def model_pks(model_ids: list[str]) -> list[int]:
    """Primary keys of the models with these model ids (unknown ids are left out)."""
    if connection.vendor != "postgresql":
        return list(ParticipantModel.objects.filter(model_id__in=model_ids).values_list("pk", flat=True))
    sql = f"SELECT id FROM {ParticipantModel._meta.db_table} WHERE model_id IN ({', '.join(['%s'] * len(model_ids))})"  # noqa: S608
    with _server_binding_cursor() as cursor:
        cursor.execute(sql, model_ids)
        return [pk for (pk,) in cursor.fetchall()]


def prediction_page_json(
    *,
    model_id_sets: Iterable[list[str]] = (),
    scope_key: str | None = None,
    config_id: int | None = None,
    subject: str | None = None,
    horizon_seconds: int | None = None,
    status: str | None = None,
    failure_reason: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after: tuple[datetime, int] | None = None,
    descending: bool = True,
    limit: int,
) -> list[str]:
    """PostgreSQL: the rows' JSON, as `prediction_json_rows`, of the predictions matching every given filter
    (each model id set: model among them; `after`: the keyset cursor (performed_at, id)), in
    (performed_at, id) order, written as SQL by hand and prepared once per connection.

    The same page as the report FilterSet + `prediction_json_rows` (tests compare them), without
    building, cloning and compiling a queryset per request.
    """
    joins, where, params = [], [], []
    for model_ids in model_id_sets:
        if len(model_ids) == 1:
            # In the page query (one round trip less), as a value: the (model, performed_at) index
            # then reads the page in order.
            where.append(f"q.model_id = (SELECT id FROM {ParticipantModel._meta.db_table} WHERE model_id = %s)")  # noqa: S608
            params.append(model_ids[0])
            continue
        pks = model_pks(model_ids)
        if not pks:
            return []
        where.append(f"q.model_id IN ({', '.join(['%s'] * len(pks))})")
        params.extend(pks)
    for column, value in (
        ("q.scope_key", scope_key),
        ("q.config_id", config_id),
        ("q.status", status),
        ("q.failure_reason", failure_reason),
    ):
        if value not in (None, ""):
            where.append(f"{column} = %s")
            params.append(value)
    if subject not in (None, ""):
        joins.append(f"JOIN {Input._meta.db_table} qi ON qi.id = q.input_id")
        where.append("(qi.scope -> 'subject') = %s::jsonb")
        params.append(json.dumps(subject))
    if horizon_seconds is not None:
        joins.append(f"JOIN {PredictionConfig._meta.db_table} qc ON qc.id = q.config_id")
        where.append("qc.horizon_seconds = %s")
        params.append(horizon_seconds)
    if start is not None:
        where.append("q.performed_at >= %s")
        params.append(start)
    if end is not None:
        where.append("q.performed_at < %s")
        params.append(end)
    op = "<" if descending else ">"
    if after is not None:
        # A row comparison: one index range on (…, performed_at, id), whose generic plan PostgreSQL
        # keeps (the `<= AND (< OR <)` form of the ORM path was planned again on every execution).
        where.append(f"(q.performed_at, q.id) {op} (%s, %s)")
        params.extend(after)
    direction = "DESC" if descending else "ASC"
    # Only table names, fixed fragments and placeholders go into the text; values are parameters.
    page_sql = (
        f"SELECT {{columns}} FROM {Prediction._meta.db_table} q {' '.join(joins)}"  # noqa: S608
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY q.performed_at {direction}, q.id {direction} LIMIT {int(limit)}"
    )
    with _server_binding_cursor() as cursor:
        if settings.REPORTS_ROW_CACHE_ROWS > 0:
            cursor.execute(
                _prediction_versions_sql(score=Score._meta.db_table, page=page_sql, direction=direction), params
            )
            texts = _ROW_CACHE.page(cursor.fetchall())
            if texts is not None:
                return texts
        sql = _prediction_json_sql(
            prediction=Prediction._meta.db_table,
            model=ParticipantModel._meta.db_table,
            input=Input._meta.db_table,
            score=Score._meta.db_table,
            page=page_sql.format(columns="q.id"),
            direction=direction,
            cursor_columns=f", {_VERSION_COLUMNS}",
        )
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if settings.REPORTS_ROW_CACHE_ROWS > 0:
        _ROW_CACHE.store(rows, limit=settings.REPORTS_ROW_CACHE_ROWS)
    return [row[0] for row in rows]


# A row version: the prediction's (xmin, ctid) and, unless it is SCORED, its score's. Every
# UPDATE writes a new tuple (a new ctid; a new xmin unless in the same transaction); a score is
# inserted or deleted. A SCORED prediction's score needs no look-up: scores are insert-only (no
# code updates one, the admin shows them read-only) and written in the transaction that makes
# their prediction SCORED (score_batch, tournament scoring); only the missing-answer policy
# scores FAILED/ABSENT predictions without touching them. The row's other sources never change
# once written: the model's `model_id` (its natural key, read-only everywhere) and the Input's
# `scope`.
_SCORE_VERSION = "CASE WHEN p.status = 'SCORED' THEN '' ELSE {} END"
_VERSION_COLUMNS = "p.id, p.xmin::text || p.ctid::text, " + _SCORE_VERSION.format("s.xmin::text || s.ctid::text")
_PAGE_VERSION_COLUMNS = "q.id, q.performed_at, q.status, q.xmin::text || q.ctid::text AS version"


class _RowCache:
    """Each prediction's report JSON as the database last wrote it, by (id, row version), in this
    process (REPORTS_ROW_CACHE_ROWS rows at most, oldest first out). A page is served from it
    only when the version of every one of its rows, read in the same query as the page itself,
    is the cached one; otherwise the whole page's JSON is read again (one snapshot) and cached.
    History rows stop changing once scored, so a reader polling pages mostly reads versions."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, str | None, str]] = {}
        self.lock = threading.Lock()

    def page(self, versions: list[tuple[int, str, str | None]]) -> list[str] | None:
        rows, texts = self.rows, []
        for pk, prediction_version, score_version in versions:
            cached = rows.get(pk)
            if cached is None or cached[0] != prediction_version or cached[1] != score_version:
                return None
            texts.append(cached[2])
        return texts

    def store(self, rows: list[tuple[str, int, str, str | None]], *, limit: int) -> None:
        with self.lock:
            for text, pk, prediction_version, score_version in rows:
                self.rows.pop(pk, None)  # re-inserted last: the newest are evicted last
                self.rows[pk] = (prediction_version, score_version, text)
            while len(self.rows) > limit:
                del self.rows[next(iter(self.rows))]

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()


_ROW_CACHE = _RowCache()


@lru_cache(maxsize=256)
def _prediction_versions_sql(*, score: str, page: str, direction: str) -> str:
    """The page's (id, prediction version, score version), in page order."""
    score_version = _SCORE_VERSION.format(
        f"(SELECT s.xmin::text || s.ctid::text FROM {score} s WHERE s.prediction_id = p.id)"  # noqa: S608
    )
    return (
        f"SELECT p.id, p.version, {score_version} FROM ({page.format(columns=_PAGE_VERSION_COLUMNS)}) p "  # noqa: S608
        f"ORDER BY p.performed_at {direction}, p.id {direction}"
    )


@lru_cache(maxsize=256)
def _prediction_json_sql(**names: str) -> str:
    return _PREDICTION_JSON_PG.format(
        performed_at=_naive_utc_sql("p.performed_at"),
        resolvable_at=_naive_utc_sql("p.resolvable_at"),
        scored_at=_naive_utc_sql("s.scored_at"),
        **names,
    )


def _server_binding_cursor():
    """PostgreSQL: a cursor (wrapped like `connection.cursor()`: logged, execute wrappers) that
    sends parameters apart from the query and has the server prepare it once per connection
    (DB_PREPARED_STATEMENTS). Planning the page query costs the server nearly as much CPU as
    running it (about 1.4 ms vs 1.7 ms for 100 rows); Django's default cursor binds on the client
    and can never reuse a plan."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_preparing_cursor_class()(connection.connection))


@cache
def _preparing_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Prepares every query it runs. Django opens connections with psycopg's automatic
        preparation off (prepare_threshold=None, which also ignores `prepare=True`); it is
        turned on for this cursor's own queries only, so Django's cursors are untouched."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            conn = self.connection
            if not settings.DB_PREPARED_STATEMENTS or conn.prepare_threshold is not None:
                return super().execute(query, params, prepare=prepare, binary=binary)
            conn.prepare_threshold = 0
            try:
                return super().execute(query, params, prepare=True, binary=binary)
            finally:
                conn.prepare_threshold = None

    return PreparingCursor


# --- Feeds ----------------------------------------------------------------------------------


def feed_records() -> QuerySet[FeedRecord]:
    """Tape records, newest first."""
    return FeedRecord.objects.order_by("-ts_event", "-id")


# --- Checkpoints ----------------------------------------------------------------------------


def checkpoints() -> QuerySet[Checkpoint]:
    """Checkpoints newest period first, without ranking and emission (big JSON)."""
    return Checkpoint.objects.defer("ranking", "emission").order_by("-period_end", "-id")


def checkpoint_latest() -> Checkpoint | None:
    """The checkpoint of the newest period (never the oldest), or None."""
    return Checkpoint.objects.order_by("-period_end", "-id").first()


def checkpoint_detail(checkpoint_id: int) -> Checkpoint | None:
    """One checkpoint with its transitions prefetched, or None."""
    return Checkpoint.objects.prefetch_related("transitions").filter(pk=checkpoint_id).first()


# --- Workers --------------------------------------------------------------------------------


def worker_heartbeats() -> QuerySet[WorkerHeartbeat]:
    """Worker heartbeats, by name then newest beat first."""
    return WorkerHeartbeat.objects.order_by("name", "-last_beat_at")
