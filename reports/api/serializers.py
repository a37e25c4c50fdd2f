"""Serializers: output shapes of the report API (and the request bodies of the two writes)."""

from datetime import UTC

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint, CheckpointTransition
from feeds.models import FeedRecord
from predictions.models import ParticipantModel, Prediction
from reports.selectors import finite_number, json_safe, numeric_fields
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


class PredictionSerializer(serializers.ModelSerializer):
    model_id = serializers.CharField(source="model.model_id")
    prediction_config_id = serializers.IntegerField(source="config_id")
    scope = SafeJSONField(source="input.scope")
    output = SafeJSONField()
    performed_at = ChartTimeField()
    score_value = serializers.SerializerMethodField()
    score_success = serializers.SerializerMethodField()
    score_failed = serializers.SerializerMethodField()
    score_failed_reason = serializers.SerializerMethodField()
    scored_at = serializers.SerializerMethodField()

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

    def to_representation(self, obj):
        # Hand-built (same fields as declared above, which document it): a page is 100+ rows and
        # the generic field machinery costs more than the query.
        score = getattr(obj, "score", None)
        return {
            "id": obj.pk,
            "model_id": obj.model.model_id,
            "prediction_config_id": obj.config_id,
            "scope_key": obj.scope_key,
            "scope": json_safe(obj.input.scope),
            "input_id": obj.input_id,
            "status": obj.status,
            "failure_reason": obj.failure_reason,
            "failure_detail": obj.failure_detail,
            "output": json_safe(obj.output),
            "exec_time_us": obj.exec_time_us,
            "performed_at": chart_time(obj.performed_at),
            "resolvable_at": iso_time(obj.resolvable_at),
            "score_value": finite_number(score.value) if score else None,
            "score_success": score.success if score else None,
            "score_failed": (not score.success) if score else True,
            "score_failed_reason": score.failed_reason if score else (obj.failure_reason or "Prediction not scored"),
            "scored_at": iso_time(score.scored_at) if score else None,
        }

    # Only for the OpenAPI schema; to_representation fills these.
    @extend_schema_field({"type": "number", "nullable": True})
    def get_score_value(self, obj):  # pragma: no cover
        return None

    @extend_schema_field({"type": "boolean", "nullable": True})
    def get_score_success(self, obj):  # pragma: no cover
        return None

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_score_failed(self, obj):  # pragma: no cover
        return None

    @extend_schema_field(OpenApiTypes.STR)
    def get_score_failed_reason(self, obj):  # pragma: no cover
        return None

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_scored_at(self, obj):  # pragma: no cover
        return None


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


class CheckpointSerializer(serializers.ModelSerializer):
    """A checkpoint in lists: without its ranking and emission (see the detail)."""

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

    class Meta(CheckpointSerializer.Meta):
        fields = [*CheckpointSerializer.Meta.fields, "ranking", "emission", "meta", "transitions"]


class ConfirmRequestSerializer(serializers.Serializer):
    tx_hash = serializers.CharField(
        max_length=128,
        trim_whitespace=False,
        help_text="The on-chain transaction hash: a Solana transaction signature (base58 of 64 bytes), or, when "
        "SETTLEMENT_CHAINS includes evm, 0x + 64 hex digits.",
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
    status = serializers.ChoiceField(choices=["ok", "error"])
    version = serializers.CharField()
    database = serializers.CharField()
    workers = HeartbeatSerializer(many=True)


class InfoSerializer(serializers.Serializer):
    crunch_id = serializers.CharField()
    crunch_name = serializers.CharField()
    crunch_address = serializers.CharField(allow_blank=True)
    network = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
