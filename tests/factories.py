"""Plain `make_<model>(**overrides)` helpers: every row a test needs, with sensible defaults."""

import itertools
from datetime import UTC, datetime, timedelta

from checkpoints.models import Checkpoint
from coordinator_site.models import WorkerHeartbeat
from feeds.models import FeedIngestionState, FeedRecord
from predictions.choices import PredictionStatus
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from scoring.models import Score, Snapshot

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday, aligned to every period
_seq = itertools.count(1)


def make_feed_record(**overrides) -> FeedRecord:
    fields = {
        "source": "synthetic",
        "subject": "BTC",
        "kind": "candle",
        "granularity": "1m",
        "ts_event": T0,
        "values": {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 1.0},
    }
    fields.update(overrides)
    return FeedRecord.objects.create(**fields)


def make_ingestion_state(**overrides) -> FeedIngestionState:
    fields = {"source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m", "last_event_ts": T0}
    fields.update(overrides)
    return FeedIngestionState.objects.create(**fields)


def make_model(**overrides) -> ParticipantModel:
    n = next(_seq)
    fields = {
        "model_id": f"m{n}",
        "name": f"model-{n}",
        "cruncher_id": f"cruncher-{n}",
        "cruncher_name": f"Cruncher {n}",
        "deployment_id": f"m{n}_d1",
    }
    fields.update(overrides)
    return ParticipantModel.objects.create(**fields)


def make_config(**overrides) -> PredictionConfig:
    n = next(_seq)
    fields = {
        "scope_key": f"BTC-{n}",
        "scope_template": {"subject": "BTC"},
        "interval_seconds": 60,
        "horizon_seconds": 300,
        "next_run_at": T0,
    }
    fields.update(overrides)
    return PredictionConfig.objects.create(**fields)


def make_input(**overrides) -> Input:
    config = overrides.pop("config", None) or make_config()
    scheduled_for = overrides.pop("scheduled_for", T0)
    fields = {
        "config": config,
        "scheduled_for": scheduled_for,
        "raw_data": {"subject": "BTC", "records": []},
        "scope": {"subject": "BTC", "scope_key": config.scope_key},
        "as_of": scheduled_for,
        "received_at": scheduled_for,
        "resolvable_at": scheduled_for + timedelta(seconds=config.horizon_seconds),
    }
    fields.update(overrides)
    return Input.objects.create(**fields)


def make_prediction(**overrides) -> Prediction:
    input_ = overrides.pop("input", None) or make_input()
    model = overrides.pop("model", None) or make_model()
    fields = {
        "input": input_,
        "model": model,
        "config": input_.config,
        "scope_key": input_.config.scope_key,
        "deployment_id": model.deployment_id,
        "status": PredictionStatus.PENDING,
        "output": {"p_up": 0.5},
        "exec_time_us": 1200,
        "performed_at": input_.scheduled_for,
        "resolvable_at": input_.resolvable_at,
    }
    fields.update(overrides)
    return Prediction.objects.create(**fields)


def make_score(**overrides) -> Score:
    prediction = overrides.pop("prediction", None) or make_prediction(status=PredictionStatus.SCORED)
    value = overrides.pop("value", 0.25)
    fields = {
        "prediction": prediction,
        "model": prediction.model,
        "input": prediction.input,
        "scope_key": prediction.scope_key,
        "performed_at": prediction.performed_at,
        "value": value,
        "result": {"value": value},
        "success": True,
    }
    fields.update(overrides)
    return Score.objects.create(**fields)


def make_snapshot(**overrides) -> Snapshot:
    model = overrides.pop("model", None) or make_model()
    period_start = overrides.pop("period_start", T0)
    fields = {
        "model": model,
        "period_start": period_start,
        "period_end": period_start + timedelta(hours=1),
        "prediction_count": 10,
        "counts": {"SCORED": 10},
        "result_summary": {"value": 0.25, "prediction_count": 10},
    }
    fields.update(overrides)
    return Snapshot.objects.create(**fields)


# A checkpoint as run_checkpoint leaves it: verified, paying one cruncher (confirmable).
VERIFIED = {"verification": {"ok": True, "problems": [], "notes": []}}
PAYING_EMISSION = {
    "crunch": "",
    "cruncher_rewards": [{"cruncher_index": 0, "reward_pct": 1_000_000_000}],
    "compute_provider_rewards": [],
    "data_provider_rewards": [],
}


def make_checkpoint(**overrides) -> Checkpoint:
    period_start = overrides.pop("period_start", T0)
    fields = {
        "period_start": period_start,
        "period_end": period_start + timedelta(days=7),
        "meta": dict(VERIFIED),
        "emission": dict(PAYING_EMISSION),
    }
    fields.update(overrides)
    return Checkpoint.objects.create(**fields)


def make_heartbeat(**overrides) -> WorkerHeartbeat:
    fields = {"name": "run_score", "host": "test-host", "pid": next(_seq), "started_at": T0, "last_beat_at": T0}
    fields.update(overrides)
    return WorkerHeartbeat.objects.create(**fields)
