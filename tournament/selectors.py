"""Reads of tournament rounds (the command, the admin and the report API)."""

from typing import Any

from django.db.models import Count, QuerySet

from predictions.models import Input, Prediction
from tournament.models import Round


def rounds_list() -> QuerySet[Round]:
    """Every round, newest first, without the large JSON columns."""
    return Round.objects.defer("ground_truth", "results").order_by("-opened_at", "-id")


def round_progress(round_: Round) -> dict[str, Any]:
    """Samples by Input status and predictions by status (and failure reason) of one round."""
    samples = dict(
        Input.objects.filter(config_id=round_.config_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("status", "n")
    )
    predictions: dict[str, int] = {}
    for status, reason, n in (
        Prediction.objects.filter(config_id=round_.config_id)
        .values_list("status", "failure_reason")
        .annotate(n=Count("id"))
        .order_by()
    ):
        key = f"{status}:{reason}" if reason else status
        predictions[key] = n
    return {"samples": samples, "predictions": dict(sorted(predictions.items()))}


def round_report(round_: Round) -> dict[str, Any]:
    """A round as the command and the API show it: lifecycle, upload report, results per part
    and combined, re-scores."""
    return {
        "round_id": round_.round_id,
        "status": round_.status,
        "sample_count": round_.sample_count,
        "out_of_sample_weight": round_.out_of_sample_weight,
        "opened_at": round_.opened_at,
        "inference_done_at": round_.inference_done_at,
        "truth_uploaded_at": round_.truth_uploaded_at,
        "scored_at": round_.scored_at,
        "truth_report": round_.truth_report,
        "results": round_.results,
        "rescores": round_.rescores,
        "cancel_reason": round_.cancel_reason,
        "last_error": round_.last_error,
        "progress": round_progress(round_),
    }


def round_predictions(round_: Round) -> list[dict[str, Any]]:
    """Every answer of the round keyed by (sample_id, model_id), with its score when scored."""
    rows = (
        Prediction.objects.filter(config_id=round_.config_id)
        .select_related("input", "model", "score")
        .order_by("input__sample_id", "model__model_id")
    )
    out = []
    for p in rows:
        score = getattr(p, "score", None)
        out.append(
            {
                "sample_id": p.input.sample_id,
                "part": p.input.scope.get("part"),
                "model_id": p.model.model_id,
                "status": p.status,
                "failure_reason": p.failure_reason,
                "output": p.output,
                "score": None if score is None else score.value,
            }
        )
    return out
