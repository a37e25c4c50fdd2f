"""Reads of predictions and models that other apps (scoring, reports) need."""

from datetime import datetime

from django.db.models import QuerySet

from predictions.choices import ModelStatus
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig


def predictions_list(
    *,
    model_ids: list[str] | None = None,
    scope_key: str | None = None,
    status: str | list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    input_id: int | None = None,
) -> QuerySet[Prediction]:
    """Predictions filtered by model (`model_id` strings), scope, status and `performed_at`
    range (start <= t < end), newest first, with model and input joined."""
    qs = Prediction.objects.select_related("model", "input")
    if model_ids:
        qs = qs.filter(model__model_id__in=model_ids)
    if scope_key:
        qs = qs.filter(scope_key=scope_key)
    if status:
        qs = qs.filter(status__in=[status] if isinstance(status, str) else status)
    if start is not None:
        qs = qs.filter(performed_at__gte=start)
    if end is not None:
        qs = qs.filter(performed_at__lt=end)
    if input_id is not None:
        qs = qs.filter(input_id=input_id)
    return qs.order_by("-performed_at", "-id")


def models_list(*, include_retired: bool = True) -> QuerySet[ParticipantModel]:
    """Participant models ordered by model_id (ACTIVE only when `include_retired` is False)."""
    qs = ParticipantModel.objects.all()
    if not include_retired:
        qs = qs.filter(status=ModelStatus.ACTIVE)
    return qs.order_by("model_id")


def model_by_id(model_id: str) -> ParticipantModel | None:
    """One model by its orchestrator id, or None."""
    return ParticipantModel.objects.filter(model_id=model_id).first()


def active_configs() -> QuerySet[PredictionConfig]:
    """Active prediction configs in run order."""
    return PredictionConfig.objects.filter(active=True).order_by("order", "scope_key")


def latest_input(*, scope_key: str) -> Input | None:
    """The newest Input of a config (by scheduled slot), or None."""
    return Input.objects.filter(config__scope_key=scope_key).order_by("-scheduled_for").first()


def seconds_until_next_slot(*, now: datetime) -> float | None:
    """Seconds until an active config is next due and claimable (None without one): what
    run_predict sleeps when idle. A config leased to someone else counts from its lease end."""
    rows = PredictionConfig.objects.filter(active=True, next_run_at__isnull=False).values_list(
        "next_run_at", "lease_until"
    )
    due = [max(at, lease) if lease is not None and lease > now else at for at, lease in rows]
    return (min(due) - now).total_seconds() if due else None
