"""The leaderboard and a built checkpoint apply the eligibility and payout rules identically
(docs/rules.md): for each rule, the same ranks, the same eligibility flags and reasons, and the
same payable set, from real scores written by the score worker (PostgreSQL and SQLite)."""

from datetime import timedelta

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from checkpoints.emission import FRAC64_TOTAL
from checkpoints.services import create_due_checkpoint
from checkpoints.verification import verify_checkpoint
from predictions.services import set_benchmark
from reports.api import views
from scoring.services import rebuild_leaderboard, score_batch
from tests.factories import T0, make_config, make_model, make_prediction
from tests.scoring.helpers import BAR, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)
NOW = T0 + 2 * HOUR
SETTLED = {"CHECKPOINT_INTERVAL_SECONDS": 3600, "SNAPSHOT_PERIOD_SECONDS": 600}
INPUTS = 24
# p_up per model on scope BTC-a and BTC-b; the tape only rises, so Brier = (1 - p_up)^2.
ANSWERS = {
    "alice-1": ("alice", 0.95, 0.60),
    "alice-2": ("alice", 0.90, 0.90),
    "bob-1": ("bob", 0.92, 0.92),  # answers 6 Inputs (3 per scope)
    "carol-1": ("carol", 0.80, 0.70),
    "bench": ("organiser", 0.75, 0.75),
    "dave-1": ("dave", 0.70, 0.50),
    "erin-1": ("erin", 0.10, 0.97),
}
# Overall (both scopes): bob-1 .0064, alice-2 .01, bench .0625, carol-1 .065, alice-1 .08125,
# dave-1 .17, erin-1 .40545.
EXPECTED = {
    "MIN_PREDICTIONS": {"alice-2", "carol-1", "alice-1", "dave-1", "erin-1"},
    "BEST_PER_CRUNCHER": {"bob-1", "alice-2", "carol-1", "dave-1", "erin-1"},
    "BENCHMARK": {"bob-1", "alice-2"},
    "TOP_N": {"alice-2", "carol-1", "dave-1", "erin-1"},
    "SPLIT": {"alice-2"},
}
EXPECTED_PARTS = {"short": {"alice-1", "carol-1"}, "long": {"erin-1", "alice-2"}}


def build_world() -> None:
    make_tape(T0 - 2 * BAR, [100.0 + i for i in range(INPUTS * 2 + 12)])
    configs = [
        make_config(scope_key="BTC-a", next_run_at=NOW, interval_seconds=240),
        make_config(scope_key="BTC-b", next_run_at=NOW, interval_seconds=240),
    ]
    models = {
        m: make_model(model_id=m, name=m, cruncher_id=c, cruncher_name=c, cruncher_index=i)
        for i, (m, (c, _, _)) in enumerate(ANSWERS.items())
    }
    set_benchmark(model_ids=["bench"], is_benchmark=True)
    for n in range(INPUTS):
        at = T0 + n * 2 * BAR
        config = configs[n % 2]
        input_ = make_scoring_input(scheduled_for=at, config=config, received_at=at)
        for m, (_, on_a, on_b) in ANSWERS.items():
            if m == "bob-1" and n % 8 >= 2:
                continue
            p_up = on_a if config.scope_key == "BTC-a" else on_b
            make_prediction(input=input_, model=models[m], output={"p_up": p_up}, performed_at=at)
    while score_batch(worker="w", batch=5, now=NOW).claimed:
        pass


@pytest.fixture(autouse=True)
def _fresh_leaderboard_cache():
    """The API keeps the newest board's body per process, keyed by row id; ids repeat across
    tests (rolled back), so start and leave every test with an empty cache."""
    views._leaderboard_cache.update(id=None, body=b"[]", checked_at=None)
    yield
    views._leaderboard_cache.update(id=None, body=b"[]", checked_at=None)


def judged(item):
    return (item["rank"], item["eligible"], item["ineligible_reasons"])


@pytest.mark.parametrize("rule", list(EXPECTED))
def test_the_leaderboard_and_the_checkpoint_agree_on_eligibility_and_the_payable_set(rule):
    with override_settings(**SETTLED, CRUNCH_CONTRACT=f"tests.checkpoints.rule_contracts:{rule}"):
        build_world()
        board = rebuild_leaderboard(now=NOW)
        checkpoint, why = create_due_checkpoint(now=NOW)
        assert checkpoint is not None, why
        problems, _notes = verify_checkpoint(checkpoint)
        rows = APIClient().get("/reports/leaderboard").json()
    assert problems == []
    assert checkpoint.meta["verification"]["ok"] is True

    entries = {e["model_id"]: e for e in board.entries}
    items = {i["model_id"]: i for i in checkpoint.ranking}
    assert set(entries) == set(items) == set(ANSWERS)
    for model_id in ANSWERS:
        assert judged(entries[model_id]) == judged(items[model_id]), model_id
        assert entries[model_id]["is_benchmark"] == items[model_id]["is_benchmark"] == (model_id == "bench")
    assert {r["model_id"]: (r["eligible"], r["ineligible_reasons"]) for r in rows} == {
        m: (e["eligible"], e["ineligible_reasons"]) for m, e in entries.items()
    }

    board_payable = {m for m, e in entries.items() if e["eligible"]}
    paid = {m for m, i in items.items() if i["reward_pct"]}
    assert board_payable == {m for m, i in items.items() if i["eligible"]} == EXPECTED[rule]
    if rule == "TOP_N":
        assert paid == {"alice-2", "carol-1", "dave-1"}  # erin-1 is eligible but 4th of the payable: n = 3
    elif rule != "SPLIT":
        assert paid == EXPECTED[rule]  # tiers: the shortfall reaches every payable model
    else:
        for name, expected in EXPECTED_PARTS.items():
            for model_id in ANSWERS:
                board_part, item_part = entries[model_id]["parts"][name], items[model_id]["parts"][name]
                assert judged(board_part) == judged(item_part), (name, model_id)
            assert {m for m, e in entries.items() if e["parts"][name]["eligible"]} == expected
            assert {m for m, i in items.items() if i["parts"][name]["reward_pct"]} == expected
            assert sum(i["parts"][name]["reward_pct"] for i in items.values()) == FRAC64_TOTAL
            assert checkpoint.meta["payout_parts"][name]["reward_sum"] == FRAC64_TOTAL
        assert paid == EXPECTED_PARTS["short"] | EXPECTED_PARTS["long"]
        assert {r["model_id"]: r["parts"]["long"]["eligible"] for r in rows}["erin-1"] is True
    assert sum(i["reward_pct"] for i in items.values()) == FRAC64_TOTAL
    assert sum(r["reward_pct"] for r in checkpoint.emission["cruncher_rewards"]) == FRAC64_TOTAL
    ineligible = {i["model_id"] for i in checkpoint.meta["eligibility"]["ineligible_models"]}
    assert ineligible == set(ANSWERS) - {m for m, i in items.items() if i["eligible"]}
