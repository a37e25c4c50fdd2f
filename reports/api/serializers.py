"""Serializers: output shapes of the report API (and the request bodies of the two writes)."""

from datetime import UTC
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint, CheckpointTransition
from checkpoints.selectors import late_scores_of
from feeds.models import FeedRecord
from predictions.models import ParticipantModel, Prediction
from reports.selectors import PREDICTION_ROW_COLUMNS, finite_number, json_safe, numeric_fields
from scoring.models import Snapshot

CHART_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$"
CHART_TIME_DESCRIPTION = (
    "UTC **without** an offset (the reference chart appends `Z` itself). Every other timestamp of "
    "the API carries its offset."
)


_DATETIME_FIELD = serializers.DateTimeField()


def iso_time(value):
    """A timestamp with its offset, encoded exactly as every DateTimeField of the API."""
    return _DATETIME_FIELD.to_representation(value)


def chart_time(value):
    """The chart x-axis encoding: UTC, ISO 8601, no offset."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat()


def utc_time(value):
    """`iso_time` for a timestamp in UTC (`…Z`), without the field machinery (hot paths)."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


@extend_schema_field({"type": "string", "pattern": CHART_TIME_PATTERN, "description": CHART_TIME_DESCRIPTION})
class ChartTimeField(serializers.DateTimeField):
    def to_representation(self, value):
        return chart_time(value)


@extend_schema_field({"type": "number", "nullable": True})
class FiniteFloatField(serializers.FloatField):
    """A float that is null instead of NaN/Infinity."""

    def to_representation(self, value):
        return finite_number(value)


@extend_schema_field(OpenApiTypes.ANY)
class SafeJSONField(serializers.JSONField):
    """JSON with every non-finite number replaced by null."""

    def to_representation(self, value):
        return json_safe(value)


# --- Models ----------------------------------------------------------------------------------


class ModelSerializer(serializers.ModelSerializer):
    model_name = serializers.CharField(source="name")

    class Meta:
        model = ParticipantModel
        fields = [
            "model_id",
            "model_name",
            "cruncher_id",
            "cruncher_name",
            "cruncher_index",
            "deployment_id",
            "status",
            "first_seen_at",
            "last_seen_at",
        ]


class ModelMetricsRowSerializer(serializers.ModelSerializer):
    """One snapshot as a chart point; the numeric fields of result_summary are flattened in."""

    model_id = serializers.CharField(source="model.model_id")
    performed_at = ChartTimeField(source="period_end")

    class Meta:
        model = Snapshot
        fields = ["model_id", "performed_at", "period_start", "period_end", "prediction_count"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for key, value in numeric_fields(instance.result_summary).items():
            data.setdefault(key, value)
        return data


# --- Predictions -----------------------------------------------------------------------------


_PREDICTION_TIME_BASE = len(PREDICTION_ROW_COLUMNS)
# Where prediction_rows puts each timestamp a keyset cursor may be built from.
PREDICTION_ROW_TIME_INDEX = {"performed_at": _PREDICTION_TIME_BASE}


def reference_scope(scope: Any) -> Any:
    """A stored Input scope as the reference UI reads it: JSON-safe, with the horizon also under the
    reference's name `resolve_horizon_seconds` (the UI filters by asset = `subject`, horizon and
    the other scope parameters)."""
    scope = json_safe(scope)
    if isinstance(scope, dict) and "horizon_seconds" in scope and "resolve_horizon_seconds" not in scope:
        scope = {**scope, "resolve_horizon_seconds": scope["horizon_seconds"]}
    return scope


def prediction_row(row: tuple) -> dict[str, Any]:
    """One /reports/predictions row from a `prediction_rows` tuple (the shape PredictionSerializer documents).

    Hand-written: a page is 100+ rows and the generic field machinery costs more than the query.
    """
    (
        pk,
        model_id,
        config_id,
        scope_key,
        scope,
        input_id,
        status,
        failure_reason,
        failure_detail,
        output,
        exec_time_us,
        score_value,
        score_success,
        score_failed_reason,
        performed_at,
        resolvable_at,
        scored_at,
    ) = row
    scored = score_success is not None  # Score.success is never null: None means no score row
    return {
        "id": pk,
        "model_id": model_id,
        "prediction_config_id": None if config_id is None else str(config_id),
        "scope_key": scope_key,
        "scope": reference_scope(scope),
        "input_id": input_id,
        "status": status,
        "failure_reason": failure_reason,
        "failure_detail": failure_detail,
        "output": json_safe(output),
        "exec_time_us": exec_time_us,
        "performed_at": chart_time(performed_at),
        "resolvable_at": utc_time(resolvable_at),
        "score_value": finite_number(score_value) if scored else None,
        "score_success": bool(score_success),
        "score_failed": not score_success,
        "score_failed_reason": score_failed_reason if scored else (failure_reason or "Prediction not scored"),
        "scored_at": chart_time(scored_at),
    }


class PredictionSerializer(serializers.ModelSerializer):
    """The documented shape of a /reports/predictions row (the rows are built by `prediction_row`)."""

    model_id = serializers.CharField(source="model.model_id")
    prediction_config_id = serializers.CharField(
        source="config_id", allow_null=True, help_text="The prediction config's id as text (as the reference)."
    )
    scope = SafeJSONField(
        source="input.scope",
        help_text="The Input's scope: feed dims (`subject` is the asset), scope_key, `horizon_seconds` "
        "(also as `resolve_horizon_seconds`, the reference's name) and `step_seconds`.",
    )
    output = SafeJSONField()
    performed_at = ChartTimeField()
    score_value = serializers.FloatField(allow_null=True)
    score_success = serializers.BooleanField(help_text="True when scored successfully; false when unscored.")
    score_failed = serializers.BooleanField(help_text="True if unscored or the scoring failed (= not score_success).")
    score_failed_reason = serializers.CharField(
        help_text='"Prediction not scored" (or the failure reason) if unscored.'
    )
    scored_at = ChartTimeField(allow_null=True)

    class Meta:
        model = Prediction
        fields = [
            "id",
            "model_id",
            "prediction_config_id",
            "scope_key",
            "scope",
            "input_id",
            "status",
            "failure_reason",
            "failure_detail",
            "output",
            "exec_time_us",
            "performed_at",
            "resolvable_at",
            "score_value",
            "score_success",
            "score_failed",
            "score_failed_reason",
            "scored_at",
        ]


# --- Feeds -----------------------------------------------------------------------------------


class FeedSummarySerializer(serializers.Serializer):
    source = serializers.CharField()
    subject = serializers.CharField()
    kind = serializers.CharField()
    granularity = serializers.CharField()
    record_count = serializers.IntegerField()
    oldest_ts = serializers.DateTimeField(allow_null=True)
    newest_ts = serializers.DateTimeField(allow_null=True)
    watermark_ts = serializers.DateTimeField(allow_null=True)
    watermark_updated_at = serializers.DateTimeField(allow_null=True)
    last_polled_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)


class FeedRecordSerializer(serializers.ModelSerializer):
    values = SafeJSONField()
    meta = SafeJSONField()

    class Meta:
        model = FeedRecord
        fields = ["id", "source", "subject", "kind", "granularity", "ts_event", "ts_ingested", "values", "meta"]


# --- Snapshots -------------------------------------------------------------------------------


class SnapshotSerializer(serializers.ModelSerializer):
    model_id = serializers.CharField(source="model.model_id")
    counts = SafeJSONField()
    result_summary = SafeJSONField()

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "model_id",
            "period_start",
            "period_end",
            "prediction_count",
            "counts",
            "result_summary",
            "content_hash",
            "created_at",
            "updated_at",
        ]


# --- Checkpoints -----------------------------------------------------------------------------


VERIFICATION_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "Outcome of verify_checkpoint: recomputed from stored rows; confirm needs ok.",
    "properties": {
        "ok": {"type": "boolean"},
        "checked_at": {"type": "string", "format": "date-time"},
        "problems": {"type": "array", "items": {"type": "string"}},
        "problem_count": {"type": "integer"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}


class CheckpointSerializer(serializers.ModelSerializer):
    """A checkpoint in lists: without its ranking and emission (see the detail)."""

    verification = serializers.SerializerMethodField()
    forced = serializers.SerializerMethodField()
    payout_note = serializers.SerializerMethodField()

    @extend_schema_field(VERIFICATION_SCHEMA)
    def get_verification(self, obj: Checkpoint):
        return json_safe((obj.meta or {}).get("verification"))

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_forced(self, obj: Checkpoint) -> bool:
        return bool((obj.meta or {}).get("forced"))

    @extend_schema_field({"type": "string", "description": "Why nobody is paid; empty when somebody is."})
    def get_payout_note(self, obj: Checkpoint) -> str:
        return str((obj.meta or {}).get("payout_note") or "")

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "period_start",
            "period_end",
            "status",
            "merkle_root",
            "tx_hash",
            "submitted_at",
            "created_at",
            "updated_at",
            "verification",
            "forced",
            "payout_note",
        ]


class CheckpointTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = CheckpointTransition
        fields = ["from_status", "to_status", "tx_hash", "actor", "at"]


class CheckpointDetailSerializer(CheckpointSerializer):
    ranking = SafeJSONField()
    emission = SafeJSONField()
    meta = SafeJSONField()
    transitions = CheckpointTransitionSerializer(many=True, read_only=True)
    late_scores = serializers.SerializerMethodField()

    @extend_schema_field(
        {
            "type": "array",
            "description": "Scores of this period that arrived after it was sealed (only after a forced build): "
            "stored and listed, never ranked or paid.",
            "items": {
                "type": "object",
                "properties": {
                    "prediction_id": {"type": "integer"},
                    "model_id": {"type": "string"},
                    "performed_at": {"type": "string", "format": "date-time"},
                    "scored_at": {"type": "string", "format": "date-time"},
                    "value": {"type": "number", "nullable": True},
                },
            },
        }
    )
    def get_late_scores(self, obj: Checkpoint):
        return late_scores_of(obj)

    class Meta(CheckpointSerializer.Meta):
        fields = [*CheckpointSerializer.Meta.fields, "ranking", "emission", "meta", "transitions", "late_scores"]


class ConfirmRequestSerializer(serializers.Serializer):
    tx_hash = serializers.CharField(
        max_length=128,
        trim_whitespace=False,
        help_text="The on-chain transaction hash: a Solana transaction signature (base58 of 64 bytes), or, when "
        "SETTLEMENT_CHAINS includes evm, 0x + 64 hex digits.",
    )
    override_reason = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Needed (and recorded) only to confirm a checkpoint that pays nobody.",
    )


class StatusRequestSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=CheckpointStatus.choices,
        help_text="The next status (no skipping).",
        error_messages={
            "invalid_choice": f'"{{input}}" is not a valid choice; one of {", ".join(CheckpointStatus.values)} '
            "(upper case)."
        },
    )


class EmissionLatestSerializer(serializers.Serializer):
    checkpoint_id = serializers.IntegerField()
    status = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    emission = SafeJSONField()


class PrizeSerializer(serializers.Serializer):
    prizeId = serializers.CharField()
    timestamp = serializers.IntegerField()
    model = serializers.CharField()
    prize = serializers.IntegerField()


class LatestPrizesSerializer(serializers.Serializer):
    checkpoint_id = serializers.IntegerField()
    status = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    total_prize = serializers.IntegerField()
    prizes = PrizeSerializer(many=True)


class CliFormatSerializer(serializers.Serializer):
    crunch = serializers.CharField(allow_blank=True)
    crunchEmission = serializers.DictField(child=serializers.FloatField())
    computeProvider = serializers.DictField(child=serializers.FloatField())
    dataProvider = serializers.DictField(child=serializers.FloatField())


class ProofStepSerializer(serializers.Serializer):
    hash = serializers.CharField()
    position = serializers.ChoiceField(choices=["left", "right"])


class MerkleProofSerializer(serializers.Serializer):
    snapshot_id = serializers.IntegerField()
    snapshot_content_hash = serializers.CharField()
    checkpoint_id = serializers.IntegerField()
    merkle_root = serializers.CharField()
    leaf_index = serializers.IntegerField()
    path = ProofStepSerializer(many=True)


# --- Misc ------------------------------------------------------------------------------------


class HeartbeatSerializer(serializers.Serializer):
    name = serializers.CharField()
    host = serializers.CharField()
    pid = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    last_beat_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "error"], help_text="The web process answers (liveness).")
    version = serializers.CharField()
    database = serializers.CharField()
    level = serializers.ChoiceField(choices=["green", "amber", "red"], help_text="The node's health level.")
    reason = serializers.CharField()
    computed_at = serializers.DateTimeField(help_text="When the level was computed (at most HEALTH_CACHE_SECONDS ago).")
    workers = HeartbeatSerializer(many=True, help_text="The newest heartbeat of each worker.")


class HealthCheckSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(choices=["feed", "predict", "score", "checkpoint", "worker"])
    name = serializers.CharField()
    level = serializers.ChoiceField(choices=["green", "amber", "red"])
    reason = serializers.CharField()
    values = serializers.DictField(help_text="Measured numbers (seconds, counts) and the cadence judged against.")


class NodeHealthSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=["green", "amber", "red"])
    reason = serializers.CharField()
    computed_at = serializers.DateTimeField()
    database = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())
    checks = HealthCheckSerializer(many=True)


class InfoSerializer(serializers.Serializer):
    crunch_id = serializers.CharField()
    crunch_name = serializers.CharField()
    crunch_address = serializers.CharField(allow_blank=True)
    network = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
