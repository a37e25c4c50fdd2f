"""Eligibility and payout rules (docs/rules.md) as properties over random rankings with ties.

For each payout shape (tiers, top-N exp(alpha/rank), an emission split by scope): every list sums
to exactly 1e9 (each part and the combined list), nobody excluded is paid, among payable models a
better rank never gets less, and tied models differ by at most one unit. Best-per-cruncher and
the benchmark cutoff never pay a model they exclude. Pure functions: no database.
"""

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoints.emission import FRAC64_TOTAL, shaped_emission, top_n_weights
from coordinator_site.contract import (
    Aggregation,
    AggregationWindow,
    Eligibility,
    EmissionPart,
    EmissionSettings,
    EmissionTier,
    TopN,
)
from scoring.eligibility import (
    AT_OR_BELOW_BENCHMARK,
    BELOW_MIN_PREDICTIONS,
    BENCHMARK,
    NOT_BEST_OF_CRUNCHER,
    apply_eligibility,
    rank_parts,
)
from scoring.ranking import rank_entries

AGGREGATION = Aggregation(
    windows={"score_recent": AggregationWindow(hours=24)}, ranking_key="score_recent", ranking_direction="asc"
)
STARTER_TIERS = [
    EmissionTier(first_rank=1, last_rank=1, pct_each=35),
    EmissionTier(first_rank=2, last_rank=5, pct_each=10),
    EmissionTier(first_rank=6, last_rank=10, pct_each=5),
]
KEYS = {"crunch_pubkey": "crunch", "compute_provider": "", "data_provider": ""}


# --- strategies ---------------------------------------------------------------------------------

eligibility_rules = st.builds(
    Eligibility,
    min_scored_predictions=st.integers(0, 6),
    best_model_per_cruncher=st.booleans(),
    benchmark_cutoff=st.booleans(),
)


@st.composite
def tiers(draw):
    """Tier tables whose per-position percentage never rises with the position."""
    pcts = sorted(draw(st.lists(st.integers(0, 40), min_size=0, max_size=4)), reverse=True)
    result, first = [], 1
    for pct in pcts:
        width = draw(st.integers(1, 4))
        result.append(EmissionTier(first_rank=first, last_rank=first + width - 1, pct_each=pct))
        first += width
    return result


shapes = st.one_of(
    st.just(EmissionSettings(tiers=STARTER_TIERS)),
    st.builds(EmissionSettings, tiers=tiers()),
    st.builds(
        EmissionSettings,
        shape=st.just("top_n"),
        top_n=st.builds(TopN, n=st.integers(1, 15), alpha=st.floats(0, 8, allow_nan=False)),
    ),
)


@st.composite
def models(draw, *, parts=()):
    """Random models: few distinct values (many ties), some unranked, shared crunchers, benchmarks,
    missing cruncher indexes and low prediction counts."""
    n = draw(st.integers(0, 40))
    value = st.one_of(st.none(), st.integers(0, 6).map(lambda v: v / 8))
    rows = []
    for i in range(n):
        rows.append(
            {
                "model_id": f"m{i:03d}",
                "cruncher_id": draw(st.sampled_from(["", "c0", "c1", "c2", "c3", "c4"])),
                "cruncher_index": draw(st.one_of(st.integers(0, 9), st.none())) if draw(st.booleans()) else i,
                "is_benchmark": draw(st.integers(0, 9)) == 0,
                "scored_count": draw(st.integers(0, 8)),
                "metrics": {"score_recent": draw(value)},
                "part_stats": {name: {"value": draw(value), "scored_count": draw(st.integers(0, 8))} for name in parts},
            }
        )
    return rows


def ranking_of(rows, rules, *, parts=()):
    """Ranking items as a checkpoint builds them: the one ranker, the one eligibility routine."""
    index = {r["model_id"]: r["cruncher_index"] for r in rows}
    judged = apply_eligibility(rank_entries(rows, AGGREGATION), rules)
    by_part = rank_parts(rows, parts=parts, aggregation=AGGREGATION, ranker=rank_entries, rules=rules) if parts else {}
    items = []
    for entry in judged:
        item = {**entry, "cruncher_index": index[entry["model_id"]], "value": entry["metrics"]["score_recent"]}
        if parts:
            item["parts"] = by_part[entry["model_id"]]
        items.append(item)
    return items


# --- checks -------------------------------------------------------------------------------------


def payable(item):
    return item["rank"] is not None and item["eligible"] and item["cruncher_index"] is not None


def check_list(items, amounts):
    """Σ exact, excluded unpaid, better never less, ties within one unit (items in ranking order)."""
    assert all(isinstance(a, int) and a >= 0 for a in amounts)
    paid = [(item, a) for item, a in zip(items, amounts, strict=True) if payable(item)]
    assert sum(amounts) == (FRAC64_TOTAL if paid else 0)
    for item, a in zip(items, amounts, strict=True):
        if not payable(item):
            assert a == 0, (item["model_id"], item.get("ineligible_reasons"))
    for i, (better, a) in enumerate(paid):
        for worse, b in paid[i + 1 :]:
            if better["rank"] < worse["rank"]:
                assert a >= b, (better["model_id"], a, worse["model_id"], b)
            else:
                assert better["rank"] == worse["rank"]
                assert abs(a - b) <= 1


def check_exclusions(items, amounts, rules):
    """Best-per-cruncher and the benchmark cutoff never pay a model they exclude; checked from
    the rules themselves, not from the reasons the routine wrote."""
    paid = {item["model_id"] for item, a in zip(items, amounts, strict=True) if a > 0}
    bench = [i["rank"] for i in items if i["is_benchmark"] and i["rank"] is not None]
    per_cruncher = defaultdict(list)
    for item in items:
        if item["model_id"] not in paid:
            continue
        assert not item["is_benchmark"]
        assert item["scored_count"] >= rules.min_scored_predictions
        if rules.benchmark_cutoff and bench:
            assert item["rank"] < min(bench)
        per_cruncher[item["cruncher_id"] or item["model_id"]].append(item)
    if rules.best_model_per_cruncher:
        assert all(len(ms) == 1 for ms in per_cruncher.values()), per_cruncher
        position = {item["model_id"]: n for n, item in enumerate(items)}
        for key, (winner,) in per_cruncher.items():
            for other in items:
                if (other["cruncher_id"] or other["model_id"]) != key or other is winner:
                    continue
                passes = (
                    other["rank"] is not None
                    and not other["is_benchmark"]
                    and other["scored_count"] >= rules.min_scored_predictions
                    and not (rules.benchmark_cutoff and bench and other["rank"] >= min(bench))
                )
                # a model of the same cruncher that passes every other rule comes after the winner
                assert not passes or position[other["model_id"]] > position[winner["model_id"]]


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(rows=models(), rules=eligibility_rules, emission=shapes)
def test_every_shape_sums_exactly_and_pays_by_rank_only_the_eligible(rows, rules, emission):
    items = ranking_of(rows, rules)
    result = shaped_emission(items, emission, **KEYS)
    amounts = [r["reward_pct"] for r in result["model_rewards"]]
    assert [r["model_id"] for r in result["model_rewards"]] == [i["model_id"] for i in items]
    check_list(items, amounts)
    check_exclusions(items, amounts, rules)
    cruncher_total = sum(r["reward_pct"] for r in result["cruncher_rewards"])
    assert cruncher_total == (FRAC64_TOTAL if any(payable(i) for i in items) else 0)


@st.composite
def split_settings(draw):
    n = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(1, 99), min_size=n - 1, max_size=n - 1, unique=True)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    base = draw(shapes)
    parts = [EmissionPart(name=f"p{i}", weight_pct=w, scope_keys=[f"S{i}"]) for i, w in enumerate(weights)]
    return EmissionSettings(**{**base.model_dump(exclude={"split"}), "split": parts})


@settings(max_examples=200, deadline=None)
@given(data=st.data(), rules=eligibility_rules, emission=split_settings())
def test_a_split_pays_each_part_on_its_own_ranking_and_every_list_sums_exactly(data, rules, emission):
    parts = emission.split
    rows = data.draw(models(parts=[p.name for p in parts]))
    items = ranking_of(rows, rules, parts=parts)
    result = shaped_emission(items, emission, **KEYS)
    for part in parts:
        view = sorted(
            ({**i, **i["parts"][part.name]} for i in items),
            key=lambda i: (i["rank"] is None, i["rank"] or 0, i["model_id"]),
        )
        by_model = {r["model_id"]: r["reward_pct"] for r in result["part_rewards"][part.name]}
        amounts = [by_model[i["model_id"]] for i in view]
        check_list(view, amounts)
        check_exclusions(view, amounts, rules)
    combined = [r["reward_pct"] for r in result["model_rewards"]]
    any_part_pays = any(payable({**i, **i["parts"][p.name]}) for i in items for p in parts)
    assert sum(combined) == (FRAC64_TOTAL if any_part_pays else 0)
    assert sum(r["reward_pct"] for r in result["cruncher_rewards"]) == (FRAC64_TOTAL if any_part_pays else 0)
    for item, amount in zip(items, combined, strict=True):
        if not any(payable({**item, **item["parts"][p.name]}) for p in parts):
            assert amount == 0


# --- worked examples (docs/rules.md) ------------------------------------------------------------


def entry(model_id, value, *, cruncher="", bench=False, scored=10):
    return {
        "model_id": model_id,
        "cruncher_id": cruncher,
        "cruncher_index": int(model_id[1:]),
        "is_benchmark": bench,
        "scored_count": scored,
        "metrics": {"score_recent": value},
    }


def reasons(items):
    return {i["model_id"]: i["ineligible_reasons"] for i in items}


def test_worked_example_min_predictions_and_best_per_cruncher_and_benchmark():
    rows = [
        entry("m1", 0.10, cruncher="alice"),
        entry("m2", 0.12, cruncher="alice"),  # alice's second model
        entry("m3", 0.15, cruncher="bob", scored=3),  # too few scored predictions
        entry("m4", 0.18, cruncher="carol"),
        entry("m5", 0.20, bench=True),  # the benchmark
        entry("m6", 0.20, cruncher="dave"),  # tied with the benchmark: not paid
        entry("m7", 0.25, cruncher="erin"),
    ]
    rules = Eligibility(min_scored_predictions=5, best_model_per_cruncher=True, benchmark_cutoff=True)
    items = ranking_of(rows, rules)
    assert reasons(items) == {
        "m1": [],
        "m2": [NOT_BEST_OF_CRUNCHER],
        "m3": [BELOW_MIN_PREDICTIONS],
        "m4": [],
        "m5": [BENCHMARK],
        "m6": [AT_OR_BELOW_BENCHMARK],
        "m7": [AT_OR_BELOW_BENCHMARK],
    }
    result = shaped_emission(items, EmissionSettings(tiers=STARTER_TIERS), **KEYS)
    # m1 and m4 take payout positions 1 and 2 (35 % and 10 %); the 55 % shortfall is shared equally
    assert {r["model_id"]: r["reward_pct"] for r in result["model_rewards"] if r["reward_pct"]} == {
        "m1": 625_000_000,
        "m4": 375_000_000,
    }


def test_worked_example_top_n_weights_and_a_tie():
    items = ranking_of([entry("m1", 0.1), entry("m2", 0.2), entry("m3", 0.2), entry("m4", 0.3)], Eligibility())
    weights = top_n_weights(items, TopN(n=3, alpha=1.0))
    # positions 1, 2, 3 weigh e, e^(1/2), e^(1/3); m2 and m3 share positions 2 and 3; m4 is 4th > n
    assert [round(float(w), 6) for w in weights] == [47.170973, 26.414513, 26.414513, 0.0]
    amounts = [
        r["reward_pct"]
        for r in shaped_emission(items, EmissionSettings(shape="top_n", top_n=TopN(n=3, alpha=1.0)), **KEYS)[
            "model_rewards"
        ]
    ]
    assert amounts == [471_709_733, 264_145_134, 264_145_133, 0]  # the tie differs by one unit


def test_settings_refuse_a_split_not_adding_up_to_100_and_top_n_without_parameters():
    with pytest.raises(ValueError, match="add up to 100"):
        EmissionSettings(split=[EmissionPart(name="a", weight_pct=60, scope_keys=["x"])])
    with pytest.raises(ValueError, match="top_n"):
        EmissionSettings(shape="top_n")
    with pytest.raises(ValueError, match="extra"):
        Eligibility(min_predictions=3)


def test_worked_example_split_by_horizon():
    parts = [
        EmissionPart(name="short", weight_pct=60, scope_keys=["BTC-60s-5m"]),
        EmissionPart(name="long", weight_pct=40, scope_keys=["BTC-60s-1h"]),
    ]
    rows = []
    for model_id, short, long, long_count in [
        ("m1", 0.10, 0.30, 10),
        ("m2", 0.12, None, 0),
        ("m3", 0.20, 0.05, 10),
        ("m4", None, 0.40, 2),
    ]:
        row = entry(model_id, 0.2)
        row["part_stats"] = {
            "short": {"value": short, "scored_count": 0 if short is None else 10},
            "long": {"value": long, "scored_count": long_count},
        }
        rows.append(row)
    items = ranking_of(rows, Eligibility(min_scored_predictions=5), parts=parts)
    assert {i["model_id"]: i["parts"]["long"]["ineligible_reasons"] for i in items}["m4"] == [BELOW_MIN_PREDICTIONS]
    result = shaped_emission(items, EmissionSettings(tiers=STARTER_TIERS, split=parts), **KEYS)
    per_part = {name: [r["reward_pct"] for r in rewards] for name, rewards in result["part_rewards"].items()}
    assert per_part == {
        "short": [500_000_000, 250_000_000, 250_000_000, 0],  # 35+15, 10+15, 10+15
        "long": [375_000_000, 0, 625_000_000, 0],  # m3 first: 35+27.5; m1: 10+27.5
    }
    # 0.6 x short + 0.4 x long
    assert [r["reward_pct"] for r in result["model_rewards"]] == [450_000_000, 150_000_000, 400_000_000, 0]
