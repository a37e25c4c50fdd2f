"""Backtest (docs/replay.md): participant models run over the stored Inputs, in the scratch store.

With a simulated clock: the stored Inputs are served oldest first, each model gets exactly what
the live models got — `tick(INFERENCE_INPUT_BUILDER(Input.raw_data))`, then the call
`PREDICT_CALL_BUILDER(Input.scope, …)` — through the local gateway's model interface, and each
answer is judged by the predict worker's own `predictions.services.judge` (validator, output
type, storage boundary). The predictions are written as the predict worker writes them (PENDING
/ FAILED, `performed_at` = the Input's `received_at`) for a model `backtest:<model_id>`; from there
the replay's score batches, leaderboards and checkpoint builds treat it like any live model.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from coordinator_site.contract import get_callable, get_contract
from predictions.choices import ModelStatus
from predictions.gateway.base import CallStatus
from predictions.gateway.local import LocalModelGateway, resolve_base_class
from predictions.models import Input, ParticipantModel, Prediction
from predictions.services import judge

BACKTEST_PREFIX = "backtest:"
# Backtested models are paid like a live one would be (an estimate): a cruncher index no live
# model uses.
BACKTEST_CRUNCHER_INDEX_BASE = 1_000_000_000


def _gateway(model_paths: list[str], workdir: Path) -> LocalModelGateway:
    """A local gateway over just these model folders (each linked into a fresh models dir)."""
    models_dir = workdir / "models"
    models_dir.mkdir()
    search = []
    for path in model_paths:
        folder = Path(path).resolve()
        if not (folder / "main.py").is_file():
            raise ValueError(f"{path}: not a model folder (no main.py)")
        (models_dir / folder.name).symlink_to(folder, target_is_directory=True)
        search += [folder.parent, folder.parent.parent]
    live_dir = Path(settings.MODELS_DIR)
    # The base class module (e.g. examples/cruncher.py) is imported once from next to the models.
    resolve_base_class(settings.MODEL_BASE_CLASSNAME, [*search, live_dir, live_dir.parent])
    gateway = LocalModelGateway(
        models_dir=models_dir,
        base_classname=settings.MODEL_BASE_CLASSNAME,
        timeout=settings.MODEL_CALL_TIMEOUT_SECONDS,
        max_consecutive_kills=settings.LOCAL_MODEL_MAX_CONSECUTIVE_KILLS,
    )
    gateway.start()
    if gateway.load_errors:
        raise ValueError(f"model(s) did not load: {[e for _sig, e in gateway.load_errors.values()]}")
    return gateway


def run_models(*, model_paths: list[str], start: datetime, end: datetime, scope_key: str = "") -> dict[str, Any]:
    """Serve every stored Input received in [start, end) (of `scope_key` if given) to the models,
    in order, and write their predictions into the scratch store. Returns {model_id: pk} of the
    backtest models and counts."""
    contract = get_contract()
    build_input = get_callable("INFERENCE_INPUT_BUILDER")
    build_call = get_callable("PREDICT_CALL_BUILDER")
    validator = get_callable("INFERENCE_OUTPUT_VALIDATOR")
    inputs = Input.objects.filter(received_at__gte=start, received_at__lt=end).select_related("config")
    if scope_key:
        inputs = inputs.filter(config__scope_key=scope_key)
    inputs = list(inputs.order_by("scheduled_for", "config__order", "config__scope_key"))
    with tempfile.TemporaryDirectory(prefix="backtest-") as tmp:
        gateway = _gateway(model_paths, Path(tmp))
        try:
            first_seen = inputs[0].received_at if inputs else start
            models: dict[str, ParticipantModel] = {}
            for n, identity in enumerate(gateway.connected_models()):
                models[identity.model_id] = ParticipantModel.objects.create(
                    model_id=f"{BACKTEST_PREFIX}{identity.model_id}",
                    name=f"{identity.name} (backtest)",
                    cruncher_id=identity.cruncher_id,
                    cruncher_name=identity.cruncher_name,
                    cruncher_index=BACKTEST_CRUNCHER_INDEX_BASE + n,
                    deployment_id=identity.deployment_id,
                    # ACTIVE from the first Input served (a `model` event of the replay).
                    status=ModelStatus.RETIRED,
                    first_seen_at=first_seen,
                    last_seen_at=first_seen,
                )
            counts: dict[str, int] = {}
            rows: list[Prediction] = []
            for input_ in inputs:
                raw = input_.raw_data
                contract.raw_input_type.model_validate(raw)
                inference_input = build_input(raw)
                method, args, kwargs = build_call(input_.scope, inference_input)
                gateway.call("tick", [inference_input])
                for answer in gateway.call(method, args, kwargs):
                    judged = judge(answer, validator=validator, output_type=contract.output_type)
                    key = str(judged.failure_reason or judged.status).lower()
                    counts[key] = counts.get(key, 0) + 1
                    rows.append(
                        Prediction(
                            input_id=input_.pk,
                            model=models[answer.model_id],
                            config_id=input_.config_id,
                            scope_key=input_.config.scope_key,
                            deployment_id=answer.identity.deployment_id,
                            status=judged.status,
                            failure_reason=judged.failure_reason,
                            failure_detail=judged.failure_detail,
                            output=judged.output,
                            exec_time_us=judged.exec_time_us,
                            performed_at=input_.received_at,
                            resolvable_at=input_.resolvable_at,
                        )
                    )
                    if answer.status == CallStatus.TIMEOUT:
                        counts["timeouts"] = counts.get("timeouts", 0) + 1
                if len(rows) >= 5000:
                    Prediction.objects.bulk_create(rows)
                    rows = []
            Prediction.objects.bulk_create(rows)
        finally:
            gateway.close()
    return {
        "models": {m.model_id: m.pk for m in models.values()},
        "first_seen": {m.model_id: first_seen.isoformat() for m in models.values()},
        "inputs": len(inputs),
        "counts": counts,
    }


def backtest_section(*, models: dict[str, int], start: datetime, end: datetime, using: str) -> dict[str, Any]:
    """Per backtest model: its score per snapshot period and per leaderboard window, its rank on
    each replayed leaderboard and its rank and estimated reward in each checkpoint."""
    from checkpoints.models import Checkpoint
    from checkpoints.selectors import Period, period_snapshots
    from checkpoints.services import compute_checkpoint, current_rules
    from scoring.models import Leaderboard, Score, Snapshot

    value_field = get_contract().aggregation.value_field
    # The whole range as if it were one checkpoint period (the same pure function the build uses):
    # a rank and an estimated reward even when no checkpoint period lies inside the range.
    whole = compute_checkpoint(list(period_snapshots(Period(start, end))), rules=current_rules())
    out = {}
    for model_id, pk in models.items():
        snapshots = [
            {
                "period_start": s.period_start.isoformat(),
                "value": (s.result_summary or {}).get(value_field),
                "coverage": (s.result_summary or {}).get("coverage"),
                "prediction_count": s.prediction_count,
            }
            for s in Snapshot.objects.filter(model_id=pk).order_by("period_start")
        ]
        boards = []
        for board in Leaderboard.objects.order_by("created_at", "id"):
            entry = next((e for e in board.entries if e["model_id"] == model_id), None)
            if entry is not None:
                ranked = sum(1 for e in board.entries if e.get("rank") is not None)
                boards.append(
                    {
                        "created_at": board.created_at.isoformat(),
                        "rank": entry.get("rank"),
                        "of": ranked,
                        "metrics": entry.get("metrics"),
                    }
                )
        checkpoints = []
        for checkpoint in Checkpoint.objects.exclude(status="VOID").order_by("period_start"):
            item = next((i for i in checkpoint.ranking if i["model_id"] == model_id), None)
            if item is not None:
                checkpoints.append(
                    {
                        "period_start": checkpoint.period_start.isoformat(),
                        "period_end": checkpoint.period_end.isoformat(),
                        "rank": item.get("rank"),
                        "of": sum(1 for i in checkpoint.ranking if i.get("rank") is not None),
                        "value": item.get("value"),
                        "estimated_reward_pct": item.get("reward_pct"),
                    }
                )
        scores = Score.objects.filter(model_id=pk)
        per_input = {str(i): v for i, v in scores.order_by("input_id").values_list("input_id", "value")}
        live_id = model_id.removeprefix(BACKTEST_PREFIX)
        live = live_model_per_input(model_id=live_id, start=start, end=end, using=using)
        common = sorted(set(per_input) & set(live))
        whole_item = next((i for i in whole.ranking if i["model_id"] == model_id), None)
        out[model_id] = {
            "range": whole_item
            and {
                "rank": whole_item["rank"],
                "of": sum(1 for i in whole.ranking if i.get("rank") is not None),
                "value": whole_item["value"],
                "estimated_reward_pct": whole_item["reward_pct"],
            },
            "predictions": scores.count(),
            "scored": scores.filter(success=True).count(),
            "snapshots": snapshots,
            "leaderboards": boards,
            "checkpoints": checkpoints,
            "per_input": per_input,
            # The same model live (same model_id without the prefix), on the Inputs both answered.
            "live_model": {
                "model_id": live_id,
                "inputs_in_common": len(common),
                "identical_scores": sum(1 for i in common if per_input[i] == live[i]),
                "differing_inputs": [i for i in common if per_input[i] != live[i]][:20],
            }
            if live
            else None,
        }
    return out


def live_model_per_input(*, model_id: str, start: datetime, end: datetime, using: str) -> dict[str, Any]:
    """A live model's stored score value per Input id over [start, end) (to set against a backtest)."""
    from scoring.models import Score

    rows = (
        Score.objects.using(using)
        .filter(model__model_id=model_id, performed_at__gte=start, performed_at__lt=end)
        .values_list("input_id", "value")
    )
    return {str(i): v for i, v in rows}
