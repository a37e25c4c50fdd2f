"""`export_tape`: the tape, the Inputs (windows, actuals) and every model's stored scores of a range,
as CSV files a participant can backtest against without a node database (docs/replay.md).

Files (UTF-8 CSV with a header; JSON columns hold canonical JSON):
- `tape.csv`: source, subject, kind, granularity, ts_event, values
- `inputs.csv`: input_id, scope_key, scheduled_for, received_at, as_of, resolvable_at, status,
  expiry_reason, raw_data, scope, actuals
- `scores.csv`: input_id, model_id, prediction_status, failure_reason, value, success, late, performed_at
- `manifest.json`: the range, the contract's aggregation and policy, the slot paths, the settings
  that decide periods.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from coordinator_site.contract import get_contract, slot_path
from feeds.models import FeedRecord
from predictions.models import Input
from scoring.models import Score
from scoring.policy import missing_policy

CHUNK = 5000


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _write(path: Path, header: list[str], rows) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_text(v) for v in row])
            count += 1
    return count


def export_range(*, start: datetime, end: datetime, out: Path, scope_key: str = "") -> dict[str, int]:
    """Write the range's tape, Inputs and scores to `out` (a directory, created). Returns row counts."""
    out.mkdir(parents=True, exist_ok=True)
    inputs = Input.objects.filter(received_at__gte=start, received_at__lt=end).select_related("config")
    if scope_key:
        inputs = inputs.filter(config__scope_key=scope_key)
    inputs = inputs.order_by("scheduled_for", "id")
    last = max(inputs.values_list("resolvable_at", flat=True), default=end)
    counts = {
        "inputs": _write(
            out / "inputs.csv",
            [
                "input_id",
                "scope_key",
                "scheduled_for",
                "received_at",
                "as_of",
                "resolvable_at",
                "status",
                "expiry_reason",
                "raw_data",
                "scope",
                "actuals",
            ],
            (
                (
                    i.pk,
                    i.config.scope_key,
                    i.scheduled_for,
                    i.received_at,
                    i.as_of,
                    i.resolvable_at,
                    i.status,
                    i.expiry_reason,
                    i.raw_data,
                    i.scope,
                    i.actuals,
                )
                for i in inputs.iterator(chunk_size=CHUNK)
            ),
        ),
        "scores": _write(
            out / "scores.csv",
            ["input_id", "model_id", "prediction_status", "failure_reason", "value", "success", "late", "performed_at"],
            Score.objects.filter(input__in=inputs.values("id"))
            .order_by("input_id", "model__model_id")
            .values_list(
                "input_id",
                "model__model_id",
                "prediction__status",
                "failed_reason",
                "value",
                "success",
                "late",
                "performed_at",
            )
            .iterator(chunk_size=CHUNK),
        ),
        "tape": _write(
            out / "tape.csv",
            ["source", "subject", "kind", "granularity", "ts_event", "values"],
            FeedRecord.objects.filter(ts_event__gte=start - timedelta(days=1), ts_event__lte=last + timedelta(hours=1))
            .order_by("source", "subject", "kind", "granularity", "ts_event")
            .values_list("source", "subject", "kind", "granularity", "ts_event", "values")
            .iterator(chunk_size=CHUNK),
        ),
    }
    contract = get_contract()
    policy = missing_policy()
    manifest = {
        "format": 1,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "scope_key": scope_key,
        "crunch_contract": settings.CRUNCH_CONTRACT,
        "aggregation": contract.aggregation.model_dump(mode="json"),
        "missing_prediction_policy": {"mode": policy.mode, "value": policy.value},
        "slots": {
            slot: slot_path(slot)[0]
            for slot in (
                "SCORING_FUNCTION",
                "INFERENCE_INPUT_BUILDER",
                "PREDICT_CALL_BUILDER",
                "INFERENCE_OUTPUT_VALIDATOR",
            )
        },
        "snapshot_period_seconds": settings.SNAPSHOT_PERIOD_SECONDS,
        "checkpoint_interval_seconds": settings.CHECKPOINT_INTERVAL_SECONDS,
        "counts": counts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return counts
