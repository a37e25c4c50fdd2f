"""The starter contract's predict-side callables (wired in STARTER_CONTRACT.callables).

Models see the newest FEED_WINDOW_SIZE records of the config's feed in `tick`, then answer
`predict(subject, horizon_seconds, step_seconds)` with `{"p_up": float in [0, 1]}`.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from feeds.dims import FeedDims, granularity_seconds
from feeds.selectors import latest_values
from predictions.gateway.base import is_finite_json
from predictions.models import PredictionConfig

SCOPE_DIMS = ("source", "subject", "kind", "granularity")


def config_dims(config: PredictionConfig) -> FeedDims:
    """The feed a config reads: its scope_template's dims, else the FEED_* settings."""
    template = config.scope_template or {}
    return FeedDims(
        source=str(template.get("source") or settings.FEED_SOURCE),
        subject=str(template.get("subject") or settings.FEED_SUBJECTS[0]),
        kind=str(template.get("kind") or settings.FEED_KIND),
        granularity=str(template.get("granularity") or settings.FEED_GRANULARITY),
    )


def tape_window_input(config: PredictionConfig, now: datetime) -> dict[str, Any] | None:
    """RAW_INPUT_PROVIDER: the newest FEED_WINDOW_SIZE records known at `now`, oldest first.

    Candles count only once closed (ts_event + bar <= now). `as_of` is when the newest record
    shown holds (tick time, or bar close time), so `price_at(dims, as_of)` is the last price
    the models saw. Returns None when the tape has nothing yet (the slot is skipped).
    """
    dims = config_dims(config)
    until = now
    bar = timedelta(0)
    if dims.kind == "candle":
        bar = timedelta(seconds=granularity_seconds(dims.granularity))
        until = now - bar
    rows = latest_values(dims, settings.FEED_WINDOW_SIZE, until=until)  # runs every cycle: no model instances
    if not rows:
        return None
    return {
        **{d: getattr(dims, d) for d in SCOPE_DIMS},
        "as_of": (rows[-1][0] + bar).isoformat(),
        "records": [{"ts_event": ts_event.isoformat(), **values} for ts_event, values in rows],
    }


def build_inference_input(raw_input: dict[str, Any]) -> dict[str, Any]:
    """INFERENCE_INPUT_BUILDER: what `tick` receives (the raw window plus `symbol`)."""
    return {"symbol": raw_input["subject"], **raw_input}


def build_prediction_scope(config: PredictionConfig, raw_input: dict[str, Any]) -> dict[str, Any]:
    """PREDICTION_SCOPE_BUILDER: the feed dims, scope_key, horizon and step of this Input."""
    from coordinator_site.contract import get_contract

    template = dict(config.scope_template or {})
    dims = config_dims(config)
    return {
        **template,
        **{d: raw_input.get(d) or getattr(dims, d) for d in SCOPE_DIMS},
        "scope_key": config.scope_key,
        "horizon_seconds": config.horizon_seconds,
        "step_seconds": int(template.get("step_seconds") or get_contract().scope.step_seconds),
    }


def build_predict_call(scope: dict[str, Any], inference_input: dict[str, Any]) -> tuple[str, list, dict]:
    """PREDICT_CALL_BUILDER: `predict(subject, horizon_seconds, step_seconds)`."""
    return "predict", [scope["subject"], scope["horizon_seconds"], scope["step_seconds"]], {}


def validate_output(output: Any) -> dict[str, Any]:
    """INFERENCE_OUTPUT_VALIDATOR: a JSON object without NaN/Infinity (the contract's
    `output_type` then checks fields, types and ranges)."""
    if not isinstance(output, dict):
        raise ValueError(f"expected a JSON object, got {type(output).__name__}")
    if not is_finite_json(output):
        raise ValueError("output holds NaN or Infinity")
    return output
