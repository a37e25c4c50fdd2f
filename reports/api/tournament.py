"""Tournament rounds under /reports/tournament/rounds (docs/tournament.md).

Reads follow the other report endpoints (public unless REPORTS_REQUIRE_AUTH). Writes (open,
ground truth, re-score, cancel) need an admin key or a staff session and call the same
services as `manage.py tournament` and the admin: 400 for a body the round cannot accept (every
problem listed), 409 for an illegal transition, 201 for a new round, 200 for a repeated one.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from coordinator_site.transitions import InvalidTransition
from reports.api import openapi
from reports.api.openapi import ERROR
from reports.api.views import ReportViewSet, conflict
from reports.auth import ReportWritePermission, request_actor
from reports.selectors import json_safe
from tournament.models import Round
from tournament.selectors import round_predictions, round_report, rounds_list
from tournament.services import (
    RoundError,
    cancel_round,
    check_truth_uploadable,
    open_round,
    parse_samples,
    parse_truth_file,
    request_rescore,
    truth_mapping,
    upload_ground_truth,
)

ROUND_ID = OpenApiParameter("round_id", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}, "path")
CREATE_ERRORS = {
    400: OpenApiResponse(ERROR, description="A body the round cannot accept (`problems` lists each)"),
    401: OpenApiResponse(ERROR, description="No credentials, or a malformed, unknown or revoked key"),
    403: OpenApiResponse(ERROR, description="Not an admin key or staff session"),
    409: OpenApiResponse(ERROR, description="The round exists with other samples or weight"),
}
ROUND_ERRORS = {
    400: OpenApiResponse(ERROR, description="A body the round cannot accept (`problems` lists each)"),
    401: OpenApiResponse(ERROR, description="No credentials, or a malformed, unknown or revoked key"),
    403: OpenApiResponse(ERROR, description="Not an admin key or staff session"),
    404: OpenApiResponse(ERROR, description="Unknown round"),
    409: OpenApiResponse(ERROR, description="Illegal transition"),
}
OPEN_REQUEST = {
    "type": "object",
    "properties": {
        "round_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "out_of_sample_weight": {"type": "number", "minimum": 0, "maximum": 1},
        "samples": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "description": "Each sample_id once.",
            "items": {
                "type": "object",
                "properties": {
                    "sample_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
                    "features": {"type": "object"},
                    "part": {"type": "string", "enum": ["in_sample", "out_of_sample"]},
                },
                "required": ["sample_id", "features"],
            },
        },
        "meta": {"type": "object"},
    },
    "required": ["round_id", "samples"],
}
TRUTH_REQUEST = {
    "type": "object",
    "description": "`ground_truth`: an object keyed by sample_id, or a list of rows with `sample_id`; "
    "or `csv`: CSV text with a `sample_id` column.",
    "properties": {
        "ground_truth": {
            "oneOf": [
                {"type": "object", "minProperties": 1},
                {"type": "array", "minItems": 1, "items": {"type": "object"}},
            ]
        },
        "csv": {
            "type": "string",
            "pattern": "sample_id",
            "description": "CSV text; its header has a sample_id column.",
        },
    },
    "anyOf": [{"required": ["ground_truth"]}, {"required": ["csv"]}],
}
REASON_REQUEST = {
    "type": "object",
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": "\\S"}},
    "required": ["reason"],
}


def _body(request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationError({"detail": "Expected a JSON object."})
    return request.data


def bad_round(exc: RoundError) -> Response:
    return Response({"detail": str(exc), "problems": exc.problems}, status=status.HTTP_400_BAD_REQUEST)


class RoundSummarySerializer(serializers.Serializer):
    round_id = serializers.CharField()
    status = serializers.CharField()
    sample_count = serializers.IntegerField()
    out_of_sample_weight = serializers.FloatField()
    opened_at = serializers.DateTimeField()
    scored_at = serializers.DateTimeField(allow_null=True)


class TournamentRoundViewSet(ReportViewSet):
    serializer_class = RoundSummarySerializer
    lookup_field = "round_id"
    lookup_value_regex = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
    keyset_orderings = ("-id",)
    default_limit = 50
    max_limit = 500

    def get_queryset(self):
        return rounds_list().order_by("-id")

    def get_permissions(self):
        if self.action in ("create", "ground_truth", "rescore", "cancel"):
            return [ReportWritePermission()]
        return super().get_permissions()

    def get_round(self) -> Round:
        round_ = Round.objects.filter(round_id=self.kwargs["round_id"]).first()
        if round_ is None:
            raise NotFound(f"Round {self.kwargs['round_id']} not found.")
        return round_

    @extend_schema(
        summary="Tournament rounds",
        description="Newest first: round_id, status, sample_count, out_of_sample_weight, opened_at, scored_at.",
        operation_id="reports_tournament_rounds_list",
        responses={200: RoundSummarySerializer(many=True)},
    )
    def _with_reason(self, request, change) -> Response:
        """A status change that takes a `reason` (re-score, cancel): 400 bad input, 409 illegal."""
        try:
            round_ = change(round_=self.get_round(), reason=_body(request).get("reason"), actor=request_actor(request))
        except RoundError as exc:
            return bad_round(exc)
        except InvalidTransition as exc:
            return conflict(exc)
        return Response(json_safe(round_report(round_)))

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RoundSummarySerializer(page, many=True).data)

    @extend_schema(
        summary="One tournament round",
        description="Lifecycle, ground-truth upload report (missing, extra, invalid sample ids), results per "
        "model per part (in_sample, out_of_sample) and combined, re-scores, progress counts.",
        parameters=[ROUND_ID],
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(ERROR)},
    )
    def retrieve(self, request, round_id=None):
        return Response(json_safe(round_report(self.get_round())))

    @extend_schema(
        summary="Every answer of a round",
        description="One row per (sample_id, model_id): status, failure reason, output and score.",
        parameters=[ROUND_ID],
        responses={200: {"type": "array", "items": {"type": "object"}}, 404: OpenApiResponse(ERROR)},
    )
    @action(detail=True, url_path="predictions", filter_backends=[], pagination_class=None)
    def predictions(self, request, round_id=None):
        return Response(json_safe(round_predictions(self.get_round())))

    @extend_schema(
        summary="Open a round",
        description="Stores the samples (each one Input) and wakes run_predict, which asks every model once "
        "per sample. Answers the round's report with `created` true; the same round with the same samples "
        "again is a no-op (`created` false); with other samples or weight, 409.",
        request={"application/json": OPEN_REQUEST},  # nested: JSON only
        responses={200: OpenApiTypes.OBJECT, **CREATE_ERRORS},
    )
    def create(self, request):
        body = _body(request)
        weight = body.get("out_of_sample_weight")
        try:
            for optional in ("out_of_sample_weight", "meta"):
                if optional in body and body[optional] is None:
                    raise RoundError(f"{optional} may be left out but not null")
            round_, created = open_round(
                round_id=body.get("round_id"),
                samples=parse_samples(body.get("samples")),
                out_of_sample_weight=weight,
                meta=body.get("meta"),
                actor=request_actor(request),
            )
        except RoundError as exc:
            return bad_round(exc)
        except InvalidTransition as exc:
            return conflict(exc)
        return Response({**json_safe(round_report(round_)), "created": created})

    @extend_schema(
        summary="Upload a round's ground truth",
        description="Keyed by sample_id; validated per sample. Missing, extra and invalid sample ids are "
        "reported and never shift another sample's pairing. Replaces earlier truth before scoring; after "
        "scoring, 409 (re-score first).",
        parameters=[ROUND_ID],
        request={"application/json": TRUTH_REQUEST},  # nested: JSON only
        responses={200: OpenApiTypes.OBJECT, **ROUND_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="ground-truth", filter_backends=[], pagination_class=None)
    def ground_truth(self, request, round_id=None):
        round_ = self.get_round()
        body = _body(request)
        try:
            check_truth_uploadable(round_)
            if isinstance(body.get("csv"), str):
                truth = parse_truth_file(body["csv"], name="upload.csv")
            elif "ground_truth" in body:
                truth = truth_mapping(body["ground_truth"])
            else:
                raise RoundError("expected `ground_truth` (object or list) or `csv` (text)")
            round_ = upload_ground_truth(round_=round_, truth=truth, actor=request_actor(request))
        except RoundError as exc:
            return bad_round(exc)
        except InvalidTransition as exc:
            return conflict(exc)
        return Response(json_safe(round_report(round_)))

    @extend_schema(
        summary="Re-score a scored round",
        description="SCORED -> GROUND_TRUTH_UPLOADED with a recorded reason; run_score then replaces its "
        "scores. 409 when the round is not SCORED or its scores are in a sealed checkpoint period.",
        parameters=[ROUND_ID],
        request=openapi.request_body(REASON_REQUEST),
        responses={200: OpenApiTypes.OBJECT, **ROUND_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rescore", filter_backends=[], pagination_class=None)
    def rescore(self, request, round_id=None):
        return self._with_reason(request, request_rescore)

    @extend_schema(
        summary="Cancel a round",
        description="Any status but SCORED -> CANCELLED (with a reason); cancelling again is 200.",
        parameters=[ROUND_ID],
        request=openapi.request_body(REASON_REQUEST),
        responses={200: OpenApiTypes.OBJECT, **ROUND_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="cancel", filter_backends=[], pagination_class=None)
    def cancel(self, request, round_id=None):
        return self._with_reason(request, cancel_round)
