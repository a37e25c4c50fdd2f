"""The report API: read-only viewsets under /reports plus two checkpoint writes.

Every list is a bare JSON array, always ordered; large ones are paged by `limit` + `cursor`
with a `Link: <…>; rel="next"` header. Paths have no trailing slash (the router is built with
`trailing_slash=False`) and static routes come before parameterised ones.
"""

import json
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from coordinator_site.boundary import Rejected
from coordinator_site.boundary.params import MALFORMED, MAX_DB_ID, parse_id_list, parse_utc_datetime, parse_whole_number
from coordinator_site.contract import competition_name, get_callable, get_contract
from coordinator_site.health import RED
from coordinator_site.transitions import InvalidTransition
from feeds.selectors import feed_summaries
from monitoring.health import current_health
from predictions.models import ParticipantModel, Prediction
from reports import selectors
from reports.api import openapi
from reports.api import serializers as s
from reports.api.errors import report_exception_handler
from reports.api.filters import (
    CheckpointFilter,
    FeedRecordFilter,
    PredictionFilter,
    SnapshotFilter,
    StrictFilterBackend,
    clean_filter_params,
)
from reports.api.openapi import ERROR, ReportAutoSchema
from reports.api.pagination import KeysetPagination
from reports.auth import ApiKeyAuthentication, ReportReadPermission, ReportWritePermission, request_actor

DEFAULT_RANGE = timedelta(days=7)
NOT_FOUND = {404: OpenApiResponse(ERROR, description="No such object.")}
MAX_CHECKPOINT_ID = 10**18 - 1  # the `{id}` route takes 1 to 18 digits; anything else is a JSON 404
CHECKPOINT_ID = OpenApiParameter(
    "id", {"type": "integer", "minimum": 0, "maximum": MAX_CHECKPOINT_ID}, OpenApiParameter.PATH
)


class ReportViewSet(viewsets.GenericViewSet):
    """Base of every /reports viewset: auth, filters, keyset pagination, read permission."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [ReportReadPermission]
    filter_backends = [StrictFilterBackend]
    schema = ReportAutoSchema()
    pagination_class = KeysetPagination
    filterset_class = None
    keyset_orderings = ("-id",)
    default_limit = 100
    max_limit = 1000

    def get_exception_handler(self):
        return report_exception_handler

    def get_queryset(self):
        # Views over computed rows (leaderboard, schema, ...) have no queryset of their own; the
        # browsable API still asks for one to build its filter form.
        return self.queryset if self.queryset is not None else ParticipantModel.objects.none()

    def paged(self, queryset, serializer_class):
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(serializer_class(page, many=True).data)


def model_ids_param(request) -> list[str]:
    """`projectIds` (or `model_id`): comma-joined and/or repeated."""
    values = request.query_params.getlist("projectIds") + request.query_params.getlist("model_id")
    return parse_id_list(values, field="projectIds")


def time_range_param(request):
    """`start`/`end` (see `parse_utc_datetime`: any offset, normalised to UTC, years 1970..9000);
    default the last 7 days up to now."""
    bounds = {}
    for name in ("start", "end"):
        raw = request.query_params.get(name)
        bounds[name] = None if raw is None else parse_utc_datetime(raw, field=name)
    end = bounds["end"] or max(timezone.now(), bounds["start"] or timezone.now())  # a start in the future: empty
    start = bounds["start"] or end - DEFAULT_RANGE
    if start > end:
        raise Rejected("OUT_OF_RANGE", "end must not be before start")
    return start, end


# --- Leaderboard -------------------------------------------------------------------------------

# The rendered JSON of the newest leaderboard, per process. A leaderboard row never changes once
# written (a new ranking is a new row), so its id is a complete cache key; which row is newest is
# re-checked (one indexed query) at most every REPORTS_LEADERBOARD_RECHECK_SECONDS.
_leaderboard_cache: dict[str, object] = {"id": None, "body": b"[]", "checked_at": None}


class LeaderboardViewSet(ReportViewSet):
    pagination_class = None
    filter_backends = []

    @extend_schema(
        summary="The newest leaderboard",
        description="Rows of the newest leaderboard ordered by rank (ties share a rank; unranked "
        "models last). Each window's value is also flattened at the top level of its row.",
        responses={200: openapi.LEADERBOARD_ROWS},
    )
    def list(self, request):
        if type(request.accepted_renderer) is not JSONRenderer:  # the browsable API
            return Response(selectors.leaderboard_rows())
        now = time.monotonic()
        checked_at = _leaderboard_cache["checked_at"]
        if checked_at is None or now - checked_at >= settings.REPORTS_LEADERBOARD_RECHECK_SECONDS:
            head = selectors.leaderboard_head()
            board_id = head[0] if head else None
            if board_id is None or board_id != _leaderboard_cache["id"]:
                body = JSONRenderer().render(selectors.leaderboard_rows(leaderboard_id=board_id))
                _leaderboard_cache.update(id=board_id, body=body)
            _leaderboard_cache["checked_at"] = now
        return HttpResponse(_leaderboard_cache["body"], content_type="application/json")


# --- Models ------------------------------------------------------------------------------------

RANGE_PARAMS = [
    OpenApiParameter("projectIds", openapi.ID_LIST_PARAM, description="Model ids, comma-joined (`a,b`) or repeated."),
    OpenApiParameter("start", openapi.DATETIME_PARAM, description="ISO 8601 (`Z` or offset). Default: end - 7 days."),
    OpenApiParameter("end", openapi.DATETIME_PARAM, description="ISO 8601 (`Z` or offset). Default: now."),
]


class ModelViewSet(ReportViewSet):
    serializer_class = s.ModelSerializer
    keyset_orderings = ("model_id",)
    default_limit = 1000
    max_limit = 5000

    def get_queryset(self):
        return selectors.models()

    @extend_schema(summary="Participant models", description="All known models, ordered by model_id.")
    def list(self, request):
        return self.paged(self.get_queryset(), s.ModelSerializer)

    @extend_schema(
        summary="Window scores per model",
        description="Per model, the mean score of each contract window over [max(start, end - window), end), "
        "from the scores themselves. `performed_at` is the newest scored prediction.",
        parameters=RANGE_PARAMS,
        responses={200: openapi.MODEL_SERIES_ROWS},
    )
    @action(detail=False, url_path="global", pagination_class=None, filter_backends=[])
    def global_scores(self, request):
        start, end = time_range_param(request)
        rows = selectors.model_score_series(model_ids=model_ids_param(request), start=start, end=end)
        return Response(openapi.with_chart_time(rows))

    @extend_schema(
        summary="Window scores per model and scope",
        description="As /reports/models/global, per (model, scope_key), with the scope of the prediction config.",
        parameters=RANGE_PARAMS,
        responses={200: openapi.MODEL_PARAMS_ROWS},
    )
    @action(detail=False, url_path="params", pagination_class=None, filter_backends=[])
    def params(self, request):
        start, end = time_range_param(request)
        rows = selectors.model_score_series(model_ids=model_ids_param(request), start=start, end=end, by_scope=True)
        return Response(openapi.with_chart_time(rows))

    @extend_schema(
        summary="Snapshot metrics over time",
        description="One row per snapshot whose period ended in (start, end], oldest first; `performed_at` is "
        "the period end and every numeric field of the snapshot's result_summary is flattened in.",
        parameters=RANGE_PARAMS,
        responses={200: s.ModelMetricsRowSerializer(many=True)},
    )
    @action(
        detail=False,
        url_path="metrics",
        filter_backends=[],
        keyset_orderings=("period_end",),
        default_limit=1000,
        max_limit=10000,
    )
    def metrics(self, request):
        start, end = time_range_param(request)
        queryset = selectors.snapshot_series(model_ids=model_ids_param(request), start=start, end=end)
        return self.paged(queryset, s.ModelMetricsRowSerializer)


# --- Predictions -------------------------------------------------------------------------------


class PredictionViewSet(ReportViewSet):
    serializer_class = s.PredictionSerializer
    filterset_class = PredictionFilter
    keyset_orderings = ("-performed_at", "performed_at")

    def get_queryset(self):
        return selectors.predictions()

    # The history is the largest read of the API. On PostgreSQL the database writes each row's
    # JSON (one query, no per-row Python); elsewhere a page is read as plain tuples of exactly the
    # shown columns and turned into rows by hand (no model instances, no field machinery).
    def keyset_rows(self, queryset, count):
        if connection.vendor == "postgresql":
            return selectors.prediction_json_rows(queryset, limit=count)
        return selectors.prediction_rows(queryset, limit=count)

    def keyset_cursor(self, row, field):
        if isinstance(row[0], str):  # (json, performed_at, id)
            return row[1], row[2]
        return row[s.PREDICTION_ROW_TIME_INDEX[field]], row[0]

    @extend_schema(
        summary="Predictions",
        description="Predictions with their status, failure reason, output and score, newest first by "
        "default. Filter by model (`projectIds`/`model_id`), `scope_key`/`config`, `subject` (the asset), "
        "`horizon_seconds`, `status`, `failure_reason` and time range (`start`/`end` on performed_at). "
        "`performed_at` and `scored_at` are UTC without an offset (the reference chart appends `Z`); "
        "`prediction_config_id` is the config's id as text.",
    )
    def list(self, request):
        if connection.vendor == "postgresql" and type(request.accepted_renderer) is JSONRenderer:
            return self.json_page(request)
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        if page and isinstance(page[0][0], str):
            body = "[" + ",".join(row[0] for row in page) + "]"
            if type(request.accepted_renderer) is JSONRenderer:
                response = HttpResponse(body, content_type="application/json")
                if self.paginator.next_url:
                    response["Link"] = f'<{self.paginator.next_url}>; rel="next"'
                return response
            return self.get_paginated_response(json.loads(body))  # the browsable API
        return self.get_paginated_response([s.prediction_row(row) for row in page])

    def json_page(self, request):
        """PostgreSQL, JSON: the same parameters, checks, rows and Link as the generic path (the
        FilterSet's fields clean the filters, the paginator the page parameters), but the page is
        one prepared query written by hand (`selectors.prediction_page_json`) and the body is the
        rows' JSON joined: no queryset, FilterSet or serializer per request."""
        params = clean_filter_params(PredictionFilter, request.query_params)
        paginator = self.paginator
        ordering, limit, after = paginator.page_params(request, self, Prediction)
        rows = selectors.prediction_page_json(
            model_id_sets=[ids for ids in (params["projectIds"], params["model_id"]) if ids],
            scope_key=params["scope_key"],
            config_id=params["config"],
            subject=params["subject"],
            horizon_seconds=params["horizon_seconds"],
            status=params["status"],
            failure_reason=params["failure_reason"],
            start=params["start"],
            end=params["end"],
            after=after,
            descending=ordering.startswith("-"),
            limit=limit + 1,
        )
        response = HttpResponse("[" + ",".join(rows[:limit]) + "]", content_type="application/json")
        if len(rows) > limit:
            # The cursor from the last row's own JSON: its id and naive-UTC performed_at (exact).
            last = json.loads(rows[limit - 1])
            performed_at = datetime.fromisoformat(last["performed_at"]).replace(tzinfo=UTC)
            response["Link"] = f'<{paginator.next_page_url(request, performed_at, last["id"])}>; rel="next"'
        return response


# --- Feeds -------------------------------------------------------------------------------------


class FeedViewSet(ReportViewSet):
    serializer_class = s.FeedSummarySerializer
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        return selectors.feed_records()

    @extend_schema(summary="Feeds on the tape", description="One row per stream (dims), with counts and watermark.")
    def list(self, request):
        return Response(s.FeedSummarySerializer(feed_summaries(), many=True).data)

    @extend_schema(
        summary="Newest tape records",
        description="The newest records of the tape, newest first; filter by the four dims.",
        responses={200: s.FeedRecordSerializer(many=True)},
    )
    @action(
        detail=False,
        url_path="tail",
        filter_backends=[StrictFilterBackend],
        filterset_class=FeedRecordFilter,
        pagination_class=KeysetPagination,
        keyset_orderings=("-ts_event",),
        default_limit=20,
        max_limit=1000,
    )
    def tail(self, request):
        return self.paged(selectors.feed_records(), s.FeedRecordSerializer)


# --- Snapshots ---------------------------------------------------------------------------------


class SnapshotViewSet(ReportViewSet):
    serializer_class = s.SnapshotSerializer
    filterset_class = SnapshotFilter
    keyset_orderings = ("-period_start", "period_start")

    def get_queryset(self):
        return selectors.snapshots()

    @extend_schema(summary="Snapshots", description="Per-model period aggregates, newest period first by default.")
    def list(self, request):
        return self.paged(self.get_queryset(), s.SnapshotSerializer)


# --- Checkpoints -------------------------------------------------------------------------------

MAX_TOTAL_PRIZE = 10**30 - 1
TOTAL_PRIZE_PARAM = OpenApiParameter(
    "total_prize",
    {"type": "integer", "minimum": 0, "maximum": MAX_TOTAL_PRIZE},
    description="Prize pool in the token's smallest unit (ASCII digits, 0 to 1e30 - 1). Default 0.",
)
WRITE_ERRORS = {
    400: OpenApiResponse(ERROR, description="Bad body"),
    401: OpenApiResponse(ERROR, description="No credentials, or a malformed, unknown or revoked key"),
    403: OpenApiResponse(ERROR, description="Not an admin key or staff session"),
    404: OpenApiResponse(ERROR, description="Unknown checkpoint"),
    409: OpenApiResponse(ERROR, description="Illegal transition"),
}


def total_prize_param(request) -> int:
    raw = request.query_params.get("total_prize")
    if raw is None:
        return 0
    return parse_whole_number(raw, field="total_prize", minimum=0, maximum=MAX_TOTAL_PRIZE)


class CheckpointViewSet(ReportViewSet):
    serializer_class = s.CheckpointSerializer
    filterset_class = CheckpointFilter
    keyset_orderings = ("-period_end",)
    default_limit = 20
    max_limit = 100
    lookup_value_regex = "[0-9]{1,18}"  # longer ids cannot exist (bigint): 404

    def get_queryset(self):
        return selectors.checkpoints()

    def get_permissions(self):
        if self.action in ("confirm", "set_status"):
            return [ReportWritePermission()]
        return super().get_permissions()

    def get_checkpoint(self):
        checkpoint = selectors.checkpoint_detail(int(self.kwargs["pk"]))
        if checkpoint is None:
            raise NotFound(f"Checkpoint {self.kwargs['pk']} not found.")
        return checkpoint

    @staticmethod
    def latest_or_404():
        checkpoint = selectors.checkpoint_latest()
        if checkpoint is None:
            raise NotFound("No checkpoints yet.")
        return checkpoint

    @staticmethod
    def emission_or_404(checkpoint):
        if not checkpoint.emission:
            raise NotFound(f"Checkpoint {checkpoint.pk} has no emission.")
        return checkpoint.emission

    @extend_schema(summary="Checkpoints", description="Newest period first; without ranking and emission.")
    def list(self, request):
        return self.paged(self.get_queryset(), s.CheckpointSerializer)

    @extend_schema(
        summary="One checkpoint", parameters=[CHECKPOINT_ID], responses={200: s.CheckpointDetailSerializer, **NOT_FOUND}
    )
    def retrieve(self, request, pk=None):
        return Response(s.CheckpointDetailSerializer(self.get_checkpoint()).data)

    @extend_schema(summary="The newest checkpoint", responses={200: s.CheckpointDetailSerializer, **NOT_FOUND})
    @action(detail=False, url_path="latest", filter_backends=[], pagination_class=None)
    def latest(self, request):
        return Response(s.CheckpointDetailSerializer(self.latest_or_404()).data)

    @extend_schema(
        summary="Prizes of the newest checkpoint",
        parameters=[TOTAL_PRIZE_PARAM],
        responses={200: s.LatestPrizesSerializer, **NOT_FOUND},
    )
    @action(detail=False, url_path="latest/prizes", filter_backends=[], pagination_class=None)
    def latest_prizes(self, request):
        total = total_prize_param(request)
        checkpoint = self.latest_or_404()
        self.emission_or_404(checkpoint)
        from checkpoints.formats import prizes

        return Response(
            s.LatestPrizesSerializer(
                {
                    "checkpoint_id": checkpoint.pk,
                    "status": checkpoint.status,
                    "period_start": checkpoint.period_start,
                    "period_end": checkpoint.period_end,
                    "total_prize": total,
                    "prizes": prizes(checkpoint, total_prize=total),
                }
            ).data
        )

    @extend_schema(
        summary="Emission of a checkpoint (EmissionCheckpoint)",
        parameters=[CHECKPOINT_ID],
        responses={200: OpenApiTypes.OBJECT, **NOT_FOUND},
    )
    @action(detail=True, url_path="emission", filter_backends=[], pagination_class=None)
    def emission(self, request, pk=None):
        return Response(selectors.json_safe(self.emission_or_404(self.get_checkpoint())))

    @extend_schema(
        summary="Emission in coordinator-cli format (percent)",
        parameters=[CHECKPOINT_ID],
        responses={200: s.CliFormatSerializer, **NOT_FOUND},
    )
    @action(detail=True, url_path="emission/cli-format", filter_backends=[], pagination_class=None)
    def emission_cli_format(self, request, pk=None):
        checkpoint = self.get_checkpoint()
        self.emission_or_404(checkpoint)
        from checkpoints.formats import cli_format

        return Response(cli_format(checkpoint))

    @extend_schema(
        summary="Prizes of a checkpoint",
        description="`total_prize` split by the checkpoint's reward shares; integers summing exactly to it.",
        parameters=[CHECKPOINT_ID, TOTAL_PRIZE_PARAM],
        responses={200: s.PrizeSerializer(many=True), **NOT_FOUND},
    )
    @action(detail=True, url_path="prizes", filter_backends=[], pagination_class=None)
    def prizes(self, request, pk=None):
        total = total_prize_param(request)
        checkpoint = self.get_checkpoint()
        self.emission_or_404(checkpoint)
        from checkpoints.formats import prizes

        return Response(prizes(checkpoint, total_prize=total))

    @extend_schema(
        summary="Confirm the on-chain submission",
        description="PENDING -> SUBMITTED with the transaction hash. The same hash again is a no-op (200); "
        "another hash, or a checkpoint past PENDING, is 409. A checkpoint that did not pass verification, or "
        "that pays nobody without `override_reason`, is 409. Needs an admin key or a staff session.",
        parameters=[CHECKPOINT_ID],
        request=openapi.request_body(openapi.CONFIRM_REQUEST),
        responses={200: s.CheckpointDetailSerializer, **WRITE_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="confirm", filter_backends=[], pagination_class=None)
    def confirm(self, request, pk=None):
        checkpoint = self.get_checkpoint()
        for name in ("tx_hash", "override_reason"):
            if isinstance(request.data, dict) and not isinstance(request.data.get(name, ""), str):
                # CharField would take the number 12 as the text "12"
                raise ValidationError({name: ["Must be a string."]})
        body = s.ConfirmRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        from checkpoints.services import InvalidTxHash, checkpoint_confirm

        try:
            checkpoint_confirm(
                checkpoint=checkpoint,
                tx_hash=body.validated_data["tx_hash"],
                actor=request_actor(request),
                override_reason=body.validated_data["override_reason"],
            )
        except InvalidTxHash as exc:
            raise ValidationError({"tx_hash": str(exc)}) from None
        except InvalidTransition as exc:
            return conflict(exc)
        return Response(s.CheckpointDetailSerializer(self.get_checkpoint()).data)

    @extend_schema(
        summary="Advance the status",
        description="SUBMITTED -> CLAIMABLE -> PAID, one step at a time (PENDING -> SUBMITTED goes through "
        "/confirm). The current status again is a no-op (200); a skip or a step back is 409.",
        parameters=[CHECKPOINT_ID],
        request=openapi.request_body(openapi.STATUS_REQUEST),
        responses={200: s.CheckpointDetailSerializer, **WRITE_ERRORS},
    )
    @action(detail=True, methods=["patch"], url_path="status", filter_backends=[], pagination_class=None)
    def set_status(self, request, pk=None):
        checkpoint = self.get_checkpoint()
        body = s.StatusRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        from checkpoints.services import checkpoint_advance

        try:
            checkpoint_advance(checkpoint=checkpoint, to=body.validated_data["status"], actor=request_actor(request))
        except InvalidTransition as exc:
            return conflict(exc)
        except ValueError as exc:
            raise ValidationError({"status": str(exc)}) from None
        return Response(s.CheckpointDetailSerializer(self.get_checkpoint()).data)


def conflict(exc: InvalidTransition) -> Response:
    current = getattr(exc, "current", None)
    target = getattr(exc, "target", None)
    return Response(
        {"detail": str(exc) or f"Cannot move from {current} to {target}.", "current": current, "target": target},
        status=status.HTTP_409_CONFLICT,
    )


class EmissionViewSet(ReportViewSet):
    pagination_class = None
    filter_backends = []

    @extend_schema(
        summary="Emission of the newest checkpoint", responses={200: s.EmissionLatestSerializer, **NOT_FOUND}
    )
    @action(detail=False, url_path="latest")
    def latest(self, request):
        checkpoint = CheckpointViewSet.latest_or_404()
        emission = CheckpointViewSet.emission_or_404(checkpoint)
        return Response(
            s.EmissionLatestSerializer(
                {
                    "checkpoint_id": checkpoint.pk,
                    "status": checkpoint.status,
                    "period_start": checkpoint.period_start,
                    "period_end": checkpoint.period_end,
                    "emission": emission,
                }
            ).data
        )


class MerkleViewSet(ReportViewSet):
    pagination_class = None
    filter_backends = []

    @extend_schema(
        summary="Merkle inclusion proof of a snapshot",
        description="Verifies up to the merkle_root of the checkpoint that committed the snapshot.",
        parameters=[OpenApiParameter("snapshot_id", openapi.ID_PARAM, required=True)],
        responses={200: s.MerkleProofSerializer, **NOT_FOUND},
    )
    @action(detail=False, url_path="proof")
    def proof(self, request):
        raw = request.query_params.get("snapshot_id")
        if raw is None:
            raise Rejected(MALFORMED, "snapshot_id is required")
        snapshot_id = parse_whole_number(raw, field="snapshot_id", minimum=1, maximum=MAX_DB_ID)
        from checkpoints.merkle import proof_for_snapshot

        proof = proof_for_snapshot(snapshot_id=snapshot_id)
        if proof is None:
            raise NotFound(f"No checkpoint commits snapshot {snapshot_id} yet.")
        return Response(proof)


class ReportSchemaViewSet(ReportViewSet):
    pagination_class = None
    filter_backends = []

    @staticmethod
    def report_schema() -> dict:
        return get_callable("REPORT_SCHEMA_PROVIDER")(get_contract())

    @extend_schema(
        summary="Report schema (leaderboard columns and chart widgets)", responses={200: openapi.REPORT_SCHEMA}
    )
    def list(self, request):
        return Response(self.report_schema())

    @extend_schema(summary="Leaderboard columns", responses={200: openapi.COLUMNS})
    @action(detail=False, url_path="leaderboard-columns")
    def leaderboard_columns(self, request):
        return Response(list(self.report_schema().get("leaderboard_columns", [])))

    @extend_schema(summary="Metrics widgets", responses={200: openapi.WIDGETS})
    @action(detail=False, url_path="metrics-widgets")
    def metrics_widgets(self, request):
        return Response(list(self.report_schema().get("metrics_widgets", [])))


# --- Health and identity -------------------------------------------------------------------------


class HealthView(APIView):
    """Liveness of the web process, for probes: 200 while it answers and the database is
    reachable, whatever the workers do (a dead worker must not restart the web server). `level`
    is the node's health from the one health model (computed at most every HEALTH_CACHE_SECONDS,
    so a probe costs no query): see `/reports/health` for every check."""

    authentication_classes = []
    permission_classes = []
    schema = ReportAutoSchema()

    @extend_schema(summary="Health (liveness)", responses={200: s.HealthSerializer, 503: s.HealthSerializer})
    def get(self, request):
        health = current_health()
        cached_health, body = _healthz_body
        if cached_health is not health:  # serialised once per verdict, not once per probe
            body = s.HealthSerializer(
                {
                    "status": "ok" if health.database == "ok" else "error",
                    "version": settings.SPECTACULAR_SETTINGS.get("VERSION", ""),
                    "database": health.database,
                    "level": health.level,
                    "reason": health.reason,
                    "computed_at": health.computed_at,
                    "workers": [check.row for check in health.by_stage("worker") if check.row is not None],
                }
            ).data
            _healthz_body[:] = [health, body]
        code = status.HTTP_200_OK if health.database == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(body, status=code)


_healthz_body: list = [None, None]  # [the verdict, its /healthz body]


class NodeHealthView(APIView):
    """The node's health: every stage and worker check with its level and reason. HTTP 200 when
    the node is green or amber, 503 when red (for uptime monitors). A read like the other
    reports: public unless REPORTS_REQUIRE_AUTH."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [ReportReadPermission]
    schema = ReportAutoSchema()

    @extend_schema(summary="Node health", responses={200: s.NodeHealthSerializer, 503: s.NodeHealthSerializer})
    def get(self, request):
        health = current_health()
        code = status.HTTP_503_SERVICE_UNAVAILABLE if health.level == RED else status.HTTP_200_OK
        return Response(health.as_dict(), status=code)


class InfoView(APIView):
    """Node identity: crunch id and name, on-chain address, network. Touches no database."""

    authentication_classes = []
    permission_classes = []
    schema = ReportAutoSchema()

    @extend_schema(summary="Node identity", responses={200: s.InfoSerializer})
    def get(self, request):
        return Response(
            {
                "crunch_id": settings.CRUNCH_ID,
                "crunch_name": competition_name(),
                "crunch_address": settings.CRUNCH_PUBKEY,
                "network": settings.SOLANA_NETWORK,
            }
        )
