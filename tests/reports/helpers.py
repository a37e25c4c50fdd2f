"""Rows and clients for the report-API tests."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from feeds.dims import NormalizedRecord
from feeds.models import FeedIngestionState
from feeds.services import ingest_records
from predictions.choices import FailureReason, PredictionStatus
from reports.services import api_key_create
from scoring.models import Leaderboard
from tests.factories import (
    T0,
    make_checkpoint,
    make_config,
    make_input,
    make_model,
    make_prediction,
    make_score,
    make_snapshot,
)

EMISSION = {
    "crunch": "CrunchPubkey111",
    "cruncher_rewards": [
        {"cruncher_index": 0, "reward_pct": 600_000_000},
        {"cruncher_index": 1, "reward_pct": 400_000_000},
    ],
    "compute_provider_rewards": [{"provider": "Compute111", "reward_pct": 1_000_000_000}],
    "data_provider_rewards": [{"provider": "Data111", "reward_pct": 1_000_000_000}],
}


def key_client(scope: str) -> tuple[APIClient, str]:
    _, raw = api_key_create(name=f"{scope}-key", scope=scope)
    return APIClient(), raw


def staff_client() -> APIClient:
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client = APIClient()
    client.force_login(user)
    return client


def make_leaderboard(entries, **overrides) -> Leaderboard:
    fields = {"created_at": T0, "entries": entries, "meta": {"ranking_key": "score_recent"}}
    fields.update(overrides)
    return Leaderboard.objects.create(**fields)


def leaderboard_entry(model, rank, recent, **extra):
    return {
        "model_id": model.model_id,
        "model_name": model.name,
        "cruncher_id": model.cruncher_id,
        "cruncher_name": model.cruncher_name,
        "rank": rank,
        "metrics": {"score_recent": recent, "score_steady": recent, "score_anchor": None},
        "score_ranking": {"key": "score_recent", "value": recent, "direction": "asc"},
        "coverage": 1.0,
        "prediction_count": 3,
        "scored_count": 3,
        **extra,
    }


def candle(close: float) -> dict:
    return {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 2.0}


def build_world():
    """Two models, one config with three inputs, predictions of every status, scores, snapshots,
    two leaderboards (older and newer), a feed stream and two checkpoints."""
    alpha = make_model(model_id="alpha", name="Alpha", cruncher_index=0)
    beta = make_model(model_id="beta", name="Beta", cruncher_index=1)
    config = make_config(scope_key="BTC-5m", scope_template={"subject": "BTC"})
    inputs = [make_input(config=config, scheduled_for=T0 + timedelta(minutes=i)) for i in range(3)]
    scored = []
    for i, input_ in enumerate(inputs):
        p = make_prediction(input=input_, model=alpha, status=PredictionStatus.SCORED, output={"p_up": 0.6})
        scored.append(make_score(prediction=p, value=0.1 * (i + 1)))
    beta_ok = make_prediction(input=inputs[0], model=beta, status=PredictionStatus.SCORED)
    make_score(prediction=beta_ok, value=0.5)
    beta_failed = make_prediction(
        input=inputs[1],
        model=beta,
        status=PredictionStatus.FAILED,
        failure_reason=FailureReason.TIMEOUT,
        failure_detail="no answer in 5s",
        output=None,
    )
    beta_absent = make_prediction(input=inputs[2], model=beta, status=PredictionStatus.ABSENT, output=None)
    snapshots = [
        make_snapshot(model=alpha, period_start=T0, result_summary={"value": 0.2, "value_count": 3, "coverage": 1.0}),
        make_snapshot(model=beta, period_start=T0, result_summary={"value": 0.5, "value_count": 1, "coverage": 0.33}),
        make_snapshot(model=alpha, period_start=T0 - timedelta(hours=1), result_summary={"value": 0.3}),
    ]
    make_leaderboard([leaderboard_entry(beta, 1, 0.9)], created_at=T0 - timedelta(hours=1))
    newest_board = make_leaderboard([leaderboard_entry(beta, 2, 0.5), leaderboard_entry(alpha, 1, 0.2)])
    ingest_records(  # the real ingest path: watermark and record count as run_feed keeps them
        NormalizedRecord("synthetic", "BTC", "candle", "1m", T0 + timedelta(minutes=i), candle(100.0 + i))
        for i in range(5)
    )
    FeedIngestionState.objects.update(last_polled_at=T0 + timedelta(minutes=5))
    ranking = [
        {
            "model_id": "alpha",
            "model_name": "Alpha",
            "cruncher_id": "cruncher-a",
            "cruncher_name": "A",
            "cruncher_index": 0,
            "rank": 1,
            "value": 0.2,
            "prediction_count": 3,
            "reward_pct": 600_000_000,
            "flags": [],
        },
        {
            "model_id": "beta",
            "model_name": "Beta",
            "cruncher_id": "cruncher-b",
            "cruncher_name": "B",
            "cruncher_index": 1,
            "rank": 2,
            "value": 0.5,
            "prediction_count": 3,
            "reward_pct": 400_000_000,
            "flags": [],
        },
    ]
    old_cp = make_checkpoint(period_start=T0 - timedelta(days=14), ranking=ranking, emission=EMISSION)
    new_cp = make_checkpoint(period_start=T0 - timedelta(days=7), ranking=ranking, emission=EMISSION)
    return {
        "alpha": alpha,
        "beta": beta,
        "config": config,
        "inputs": inputs,
        "scored": scored,
        "beta_failed": beta_failed,
        "beta_absent": beta_absent,
        "snapshots": snapshots,
        "board": newest_board,
        "old_cp": old_cp,
        "new_cp": new_cp,
    }
