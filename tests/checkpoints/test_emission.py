"""Emission: golden vectors, tie patterns, unpaid models, and the money invariants as properties."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoints.emission import (
    FRAC64_TOTAL,
    allocate_frac64,
    build_proportional_emission,
    build_tiered_emission,
)
from checkpoints.formats import prizes
from coordinator_site.contract import get_contract
from scoring.ranking import rank_entries

M = 1_000_000


def ranking_of(values, *, indexes=None):
    """Checkpoint-style ranking items from scores (lower is better), ranked by the real routine."""
    entries = [{"model_id": f"m{i:03d}", "metrics": {"score_recent": v}} for i, v in enumerate(values)]
    ranked = rank_entries(entries, get_contract().aggregation)
    items = []
    for entry in ranked:
        position = int(entry["model_id"][1:])
        index = position if indexes is None else indexes[position]
        items.append(
            {
                "model_id": entry["model_id"],
                "rank": entry["rank"],
                "value": entry["metrics"]["score_recent"],
                "cruncher_index": index,
            }
        )
    return items


def tiered(values, **kwargs):
    emission = build_tiered_emission(ranking_of(values, **kwargs), "crunchPK", "", "")
    return emission, [r["reward_pct"] for r in emission["model_rewards"]]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, []),
        (1, [1000 * M]),
        (3, [500 * M, 250 * M, 250 * M]),
        # 35+15/7 %, 10+15/7 % x4, 5+15/7 % x2: every remainder is 3/7, the first three get the units
        (7, [371_428_572, 121_428_572, 121_428_572, 121_428_571, 121_428_571, 71_428_571, 71_428_571]),
        (10, [350 * M] + [100 * M] * 4 + [50 * M] * 5),
        (12, [350 * M] + [100 * M] * 4 + [50 * M] * 5 + [0, 0]),
    ],
)
def test_golden_vectors_for_distinct_scores(n, expected):
    emission, rewards = tiered([0.01 * (i + 1) for i in range(n)])
    assert rewards == expected
    paid = [r for r in expected if r > 0]
    assert [r["reward_pct"] for r in emission["cruncher_rewards"]] == paid
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == (FRAC64_TOTAL if n else 0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # two tied at the top of two: positions 1+2 = 45 %, shortfall 55 % shared -> half each
        ([0.1, 0.1], [500 * M, 500 * M]),
        # tie for first of three: (35+10)/2 each, 10 %, then +15 % shortfall each
        ([0.1, 0.1, 0.3], [375 * M, 375 * M, 250 * M]),
        # tie for second of three: 35 %, (10+10)/2, shortfall 15 % each
        ([0.1, 0.2, 0.2], [500 * M, 250 * M, 250 * M]),
        # tie across the 10 % / 5 % boundary (positions 5 and 6 share 15 %)
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.7, 0.8, 0.9, 1.0], [350 * M] + [100 * M] * 3 + [75 * M] * 2 + [50 * M] * 4),
        # tie across the end of the tiers (positions 10 and 11 share 5 % + 0 %)
        ([0.01 * i for i in range(1, 10)] + [0.5, 0.5], [350 * M] + [100 * M] * 4 + [50 * M] * 4 + [25 * M] * 2),
        # twelve all tied: 100 % / 12, the four extra units go to the first four in ranking order
        ([0.3] * 12, [83_333_334] * 4 + [83_333_333] * 8),
        # two tie groups: (35+10)/2, (10+10+10)/3, then 5 %; shortfall 20 % over 6 (remainders 1/3)
        ([0.1, 0.1, 0.2, 0.2, 0.2, 0.3], [258_333_334] * 2 + [133_333_333] * 3 + [83_333_333]),
    ],
)
def test_tied_models_share_their_tiers_equally(values, expected):
    _, rewards = tiered(values)
    assert rewards == expected
    assert sum(rewards) == FRAC64_TOTAL


def test_model_without_cruncher_index_is_never_paid_and_its_share_goes_to_the_paid():
    # 50/25/25 % without the rule; the 2nd has no index, its 25 % is shared by the other two.
    emission, rewards = tiered([0.1, 0.2, 0.3], indexes=[7, None, 9])
    assert rewards == [625 * M, 0, 375 * M]
    assert emission["cruncher_rewards"] == [
        {"cruncher_index": 7, "reward_pct": 625 * M},
        {"cruncher_index": 9, "reward_pct": 375 * M},
    ]


def test_nobody_with_an_index_means_nobody_is_paid():
    emission, rewards = tiered([0.1, 0.2], indexes=[None, None])
    assert rewards == [0, 0]
    assert emission["cruncher_rewards"] == []


def test_two_models_of_one_cruncher_are_paid_as_one_reward():
    emission, _ = tiered([0.1, 0.2, 0.3], indexes=[4, 4, 5])
    assert emission["cruncher_rewards"] == [
        {"cruncher_index": 4, "reward_pct": 750 * M},
        {"cruncher_index": 5, "reward_pct": 250 * M},
    ]


def test_unranked_models_get_nothing():
    _, rewards = tiered([0.1, None, 0.3])
    assert rewards == [625 * M, 375 * M, 0]  # the unranked model comes last, two ranked share 100 %


def test_provider_lists_come_from_the_keys_and_are_empty_when_unset():
    ranking = ranking_of([0.1])
    emission = build_tiered_emission(ranking, "crunchPK", "computePK", "")
    assert emission["crunch"] == "crunchPK"
    assert emission["compute_provider_rewards"] == [{"provider": "computePK", "reward_pct": FRAC64_TOTAL}]
    assert emission["data_provider_rewards"] == []


def test_proportional_strategy_pays_by_distance_from_the_worst_score():
    emission = build_proportional_emission(ranking_of([0.1, 0.2, 0.4]), "pk", "", "")
    # distances from the worst (0.4, lower is better): 0.3, 0.2, 0 -> 60 %, 40 %, 0
    assert [r["reward_pct"] for r in emission["model_rewards"]] == [600 * M, 400 * M, 0]
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_TOTAL


def test_proportional_strategy_shares_equally_when_all_scores_are_equal():
    emission = build_proportional_emission(ranking_of([0.2, 0.2]), "pk", "", "")
    assert [r["reward_pct"] for r in emission["model_rewards"]] == [500 * M, 500 * M]


def test_allocate_refuses_negative_weights():
    with pytest.raises(ValueError, match="negative"):
        allocate_frac64([1, -1])


ranking_values = st.lists(st.one_of(st.none(), st.integers(0, 20).map(lambda v: v / 20)), max_size=500)


@settings(max_examples=150, deadline=None)
@given(values=ranking_values, missing_index=st.sets(st.integers(0, 499), max_size=30), data=st.data())
def test_any_ranking_pays_exactly_1e9_with_no_negative_and_better_never_gets_less(values, missing_index, data):
    indexes = [None if i in missing_index else i for i in range(len(values))]
    builder = data.draw(st.sampled_from([build_tiered_emission, build_proportional_emission]))
    ranking = ranking_of(values, indexes=indexes)
    emission = builder(ranking, "pk", "c", "d")
    rewards = [r["reward_pct"] for r in emission["model_rewards"]]
    payable = [item["rank"] is not None and item["cruncher_index"] is not None for item in ranking]
    assert all(isinstance(r, int) and r >= 0 for r in rewards)
    assert sum(rewards) == (FRAC64_TOTAL if any(payable) else 0)
    assert all(r == 0 for r, ok in zip(rewards, payable, strict=True) if not ok)
    cruncher = [r["reward_pct"] for r in emission["cruncher_rewards"]]
    assert all(r > 0 for r in cruncher)
    assert sum(cruncher) == (FRAC64_TOTAL if any(rewards) else 0)
    for key in ("compute_provider_rewards", "data_provider_rewards"):
        assert sum(r["reward_pct"] for r in emission[key]) == FRAC64_TOTAL
    if builder is build_tiered_emission:
        paid = [r for r, ok in zip(rewards, payable, strict=True) if ok]
        assert paid == sorted(paid, reverse=True)

    total = data.draw(st.integers(0, 10**15))
    checkpoint = SimpleNamespace(
        pk=1,
        period_end=datetime(2026, 11, 9, tzinfo=UTC),
        ranking=[{**item, "reward_pct": r} for item, r in zip(ranking, rewards, strict=True)],
    )
    paid_prizes = prizes(checkpoint, total_prize=total)
    assert sum(p["prize"] for p in paid_prizes) == (total if any(rewards) else 0)
    assert all(p["prize"] >= 0 for p in paid_prizes)
