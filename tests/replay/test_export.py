"""export_tape, and the challenge package's backtest run against it without a node database:
the same scores as the node gave the live model, ranked by the same rule."""

import csv
import importlib
import json
import sys

import pytest
from django.core.management import call_command

from coordinator_site.exact import exact, exact_mean
from scoring.models import Score
from tests.replay.helpers import build_two_model_store
from tests.scaffold.helpers import generate

pytestmark = pytest.mark.django_db

MODEL = """
from {package}.model import ModelBaseClass


class LikeModelA(ModelBaseClass):
    def predict_p_up(self, prices, *, horizon_seconds, step_seconds):
        return 0.3 if prices and prices[-1] > 100.5 else 0.7
"""


def test_export_tape_writes_the_tape_the_inputs_and_every_stored_score(tmp_path):
    _a, _b, period = build_two_model_store()
    out = tmp_path / "export"
    call_command("export_tape", "--from", period.start.isoformat(), "--to", period.end.isoformat(), "--out", str(out))
    inputs = list(csv.DictReader((out / "inputs.csv").open()))
    scores = list(csv.DictReader((out / "scores.csv").open()))
    tape = list(csv.DictReader((out / "tape.csv").open()))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [json.loads(i["actuals"])["direction_up"] for i in inputs] == [True, False]
    assert json.loads(inputs[0]["raw_data"])["records"][0]["close"] == 100.0
    assert len(scores) == Score.objects.count() == 4
    assert {(s["model_id"], float(s["value"])) for s in scores} == {
        (s.model.model_id, s.value) for s in Score.objects.select_related("model")
    }
    assert len(tape) == 26
    assert manifest["aggregation"]["ranking_direction"] == "asc"
    assert manifest["slots"]["SCORING_FUNCTION"] == "scoring.functions:brier_score"


def test_the_challenge_package_backtest_gives_the_node_scores_and_rank_from_an_export(tmp_path):
    a, _b, period = build_two_model_store()
    out = tmp_path / "export"
    call_command("export_tape", "--from", period.start.isoformat(), "--to", period.end.isoformat(), "--out", str(out))
    workspace = generate(tmp_path)
    package = workspace.challenge_dir.name.replace("-", "_")
    model_dir = tmp_path / "like_a"
    model_dir.mkdir()
    (model_dir / "main.py").write_text(MODEL.format(package=package))
    sys.path.insert(0, str(workspace.challenge_dir))
    try:
        backtest = importlib.import_module(f"{package}.backtest")
        results = backtest.backtest(out, {"like_a": backtest.load_model(model_dir)})
    finally:
        sys.path.remove(str(workspace.challenge_dir))
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]
    result = results["like_a"]
    live_values = list(Score.objects.filter(model=a).values_list("value", flat=True))
    assert sorted(result["per_input"].values()) == sorted(live_values)
    # The node's exact mean, bit for bit; tied with model-a at rank 1, model-b third.
    assert result["mean"] == exact_mean(sum(exact(v) for v in live_values), len(live_values))
    assert (result["rank"], result["of"]) == (1, 3)
    assert backtest_rank_rule_matches_node(backtest)


def backtest_rank_rule_matches_node(module) -> bool:
    """The mirrored ranking rule agrees with scoring.ranking.rank_entries on ties and gaps."""
    from coordinator_site.contract import get_contract
    from scoring.ranking import rank_entries

    values = {"a": 0.1, "b": 0.1, "c": 0.3, "d": None, "e": 0.05}
    node = rank_entries(
        [{"model_id": m, "metrics": {"score_recent": v}} for m, v in values.items()], get_contract().aggregation
    )
    return module.rank(values, direction="asc") == {e["model_id"]: e["rank"] for e in node}
