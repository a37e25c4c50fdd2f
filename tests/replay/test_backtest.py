"""Backtest: a model folder run over the stored Inputs gets, where it also ran live, exactly the
scores it got live, and the rank and estimated reward it would have had against the live models."""

from pathlib import Path

import pytest
from django.core.management import call_command

from replay.models import ReplayKind, ReplayReport
from replay.services import replay_range
from tests.replay.helpers import build_two_model_store, live_checksum

pytestmark = pytest.mark.django_db(transaction=True)
MODEL_A = Path(__file__).parent / "models" / "model-a"


def test_a_backtested_model_gets_exactly_its_live_scores_and_its_would_be_rank_and_reward():
    _a, _b, period = build_two_model_store()
    before = live_checksum()
    row = replay_range(start=period.start, end=period.end, backtest_models=[str(MODEL_A)])
    assert live_checksum() == before
    assert row.kind == ReplayKind.BACKTEST
    assert row.exit_code == 0
    backtest = row.report["backtest"]
    assert backtest["inputs"] == 2
    result = backtest["models"]["backtest:model-a"]
    assert result["scored"] == 2
    # Brier (0.7 - 1)^2 and (0.3 - 0)^2: the values live model-a got, bit for bit.
    assert sorted(result["per_input"].values()) == sorted([(0.7 - 1.0) ** 2, (0.3 - 0.0) ** 2])
    assert result["live_model"]["inputs_in_common"] == 2
    assert result["live_model"]["identical_scores"] == 2
    # Tied with model-a (rank 1, 1), model-b third; ties share tiers 1 and 2 ((35 + 10) / 2 %), the
    # 45 % shortfall is shared by the three ranked models: 22.5 + 15 = 37.5 %.
    [checkpoint] = result["checkpoints"]
    assert (checkpoint["rank"], checkpoint["of"]) == (1, 3)
    assert checkpoint["estimated_reward_pct"] == 375_000_000
    assert result["leaderboards"][-1]["rank"] == 1
    # The checkpoint's period is the whole range here: the range view agrees with it.
    assert result["range"] == {**result["range"], "rank": 1, "of": 3, "estimated_reward_pct": 375_000_000}
    assert ReplayReport.objects.get(pk=row.pk).summary["backtest"]["backtest:model-a"]["scored"] == 2


def test_the_backtest_command_prints_the_rank_and_estimated_reward(capsys):
    _a, _b, period = build_two_model_store()
    call_command(
        "backtest", "--model", str(MODEL_A), "--from", period.start.isoformat(), "--to", period.end.isoformat()
    )
    out = capsys.readouterr().out
    assert "backtest:model-a: 2 of 2 predictions scored" in out
    assert "rank 1 of 3" in out
    assert "estimated reward 37.5000%" in out
    assert "against live model-a: 2 of 2 scores identical" in out
