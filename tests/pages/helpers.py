"""A small but complete node state for the page tests, built with the shared factories."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from checkpoints.models import CheckpointTransition
from feeds.dims import NormalizedRecord
from feeds.models import FeedIngestionState
from feeds.services import ingest_records
from predictions.choices import FailureReason, PredictionStatus
from predictions.models import ModelDeployment
from scoring.models import Leaderboard
from tests.factories import (
    make_checkpoint,
    make_config,
    make_heartbeat,
    make_input,
    make_model,
    make_prediction,
    make_score,
    make_snapshot,
)

# Ranked best first (Brier: lower is better); the leaderboard lists them in this order.
RANKED = [("m-beta", "beta", 0.18), ("m-alpha", "alpha", 0.22), ("m-gamma", "gamma", 0.31)]


@dataclass
class Seeded:
    models: dict = field(default_factory=dict)
    configs: list = field(default_factory=list)
    checkpoint: object = None
    prediction_count: int = 0


def seed_node(*, now: datetime, inputs_per_config: int = 6, tape_minutes: int = 120) -> Seeded:
    """Models, two configs, predictions of every status, scores, snapshots, a leaderboard,
    a fresh candle tape, a checkpoint with its history and fresh worker heartbeats."""
    seeded = Seeded()
    for model_id, name, _ in RANKED:
        model = make_model(
            model_id=model_id, name=name, cruncher_name=f"{name} team", cruncher_index=len(seeded.models)
        )
        ModelDeployment.objects.create(
            model=model, deployment_id=f"{model_id}_d1", first_seen_at=now - timedelta(days=2)
        )
        seeded.models[model_id] = model
    seeded.configs = [make_config(scope_key="BTC-5m"), make_config(scope_key="BTC-1h", horizon_seconds=3600)]
    for config in seeded.configs:
        for i in range(inputs_per_config):
            scheduled = now - timedelta(minutes=10 * (inputs_per_config - i))
            input_ = make_input(config=config, scheduled_for=scheduled)
            for j, (model_id, _, value) in enumerate(RANKED):
                model = seeded.models[model_id]
                if j == 2 and i % 3 == 0:
                    make_prediction(
                        input=input_,
                        model=model,
                        status=PredictionStatus.FAILED,
                        failure_reason=FailureReason.TIMEOUT,
                        failure_detail="no answer within 5.0 s",
                        output=None,
                    )
                elif i == inputs_per_config - 1:
                    make_prediction(input=input_, model=model)  # still PENDING
                else:
                    prediction = make_prediction(input=input_, model=model, status=PredictionStatus.SCORED)
                    make_score(prediction=prediction, value=value)
                seeded.prediction_count += 1
    for hours_ago in range(30, 0, -1):
        start = (now - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0)
        for k, (model_id, _, value) in enumerate(RANKED):
            wobble = ((hours_ago * (k + 3)) % 7) / 100
            make_snapshot(
                model=seeded.models[model_id],
                period_start=start,
                prediction_count=12,
                counts={"SCORED": 11, "FAILED": 1},
                result_summary={"value": value + wobble, "value_count": 12, "coverage": 11 / 12},
                content_hash=f"{k:02d}{hours_ago:02d}" + "ab" * 30,
            )
    Leaderboard.objects.create(
        created_at=now - timedelta(minutes=1),
        entries=[
            {
                "model_id": model_id,
                "model_name": name,
                "cruncher_id": f"c-{name}",
                "cruncher_name": f"{name} team",
                "rank": rank,
                "metrics": {"score_recent": value, "score_steady": value + 0.01, "score_anchor": None},
                "score_ranking": {"key": "score_recent", "value": value, "direction": "asc"},
                "coverage": 0.9,
                "prediction_count": 12,
                "scored_count": 11,
            }
            for rank, (model_id, name, value) in enumerate(RANKED, start=1)
        ],
        meta={"ranking_key": "score_recent", "ranking_direction": "asc"},
    )
    newest = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    tape = []
    for minute in range(tape_minutes):
        close = 60000 + 25 * ((minute * 7) % 13) - 3 * minute
        values = {"open": close - 5, "high": close + 10, "low": close - 10, "close": close, "volume": 1.5}
        ts_event = newest - timedelta(minutes=tape_minutes - 1 - minute)
        tape.append(NormalizedRecord("synthetic", "BTC", "candle", "1m", ts_event, values))
    ingest_records(tape)  # the real ingest path: watermark and record count as run_feed keeps them
    FeedIngestionState.objects.filter(source="synthetic").update(last_polled_at=now)
    seeded.checkpoint = make_checkpoint(
        period_start=now - timedelta(days=14),
        status="SUBMITTED",
        tx_hash="5" * 88,
        submitted_at=now - timedelta(days=6),
        merkle_root="f" * 64,
        ranking=[
            {
                "model_id": model_id,
                "model_name": name,
                "cruncher_id": f"c-{name}",
                "cruncher_name": f"{name} team",
                "cruncher_index": k,
                "rank": k + 1,
                "value": value,
                "prediction_count": 100,
                "reward_pct": pct,
                "flags": [],
            }
            for k, ((model_id, name, value), pct) in enumerate(
                zip(RANKED, [450_000_000, 300_000_000, 250_000_000], strict=True)
            )
        ],
        emission={
            "crunch": "CrunchPubkey1111",
            "cruncher_rewards": [
                {"cruncher_index": 0, "reward_pct": 450_000_000},
                {"cruncher_index": 1, "reward_pct": 300_000_000},
                {"cruncher_index": 2, "reward_pct": 250_000_000},
            ],
            "compute_provider_rewards": [{"provider": "Compute111", "reward_pct": 1_000_000_000}],
            "data_provider_rewards": [{"provider": "Data111", "reward_pct": 1_000_000_000}],
        },
    )
    CheckpointTransition.objects.create(
        checkpoint=seeded.checkpoint,
        from_status="PENDING",
        to_status="SUBMITTED",
        tx_hash="5" * 88,
        actor="admin:ops",
        at=now - timedelta(days=6),
    )
    for name in ("run_feed", "run_predict", "run_score", "run_checkpoint"):
        make_heartbeat(name=name, started_at=now - timedelta(hours=1), last_beat_at=now, counters={"units": 12})
    return seeded


def settle_node(*, now: datetime) -> None:
    """Make a seeded node healthy for the health model: slots due in the future, due Inputs
    resolved, the last ended checkpoint period built."""
    from checkpoints.selectors import aligned_period
    from predictions.choices import InputStatus
    from predictions.models import Input, PredictionConfig

    PredictionConfig.objects.update(next_run_at=now + timedelta(minutes=1))
    Input.objects.filter(resolvable_at__lte=now).update(status=InputStatus.RESOLVED)
    current = aligned_period(now)
    make_checkpoint(
        period_start=current.start - (current.end - current.start),
        period_end=current.start,
        status="SUBMITTED",
        tx_hash="6" * 88,
    )
