"""Emission builders (EMISSION_BUILDER): a checkpoint's ranking -> the on-chain reward split.

Every builder is called as `(ranking, crunch_pubkey, compute_provider, data_provider)` with the
checkpoint's ranking items (`model_id`, `cruncher_index`, `rank`, `value`, `flags`, ...) in
ranking order, and returns the EmissionCheckpoint of DESIGN.md §9 plus `model_rewards`
(`[{"model_id", "reward_pct"}]`, what each ranking item is paid; the service moves it onto the
ranking and does not submit it).

Money rules shared by every builder here:
- amounts are frac64 integers, 1,000,000,000 = 100 %; every non-empty list sums to exactly 1e9
  and no amount is negative (largest-remainder rounding; a remainder tie goes to the item that
  comes first in ranking order, so the split is reproducible);
- an item without `cruncher_index` is never paid (it cannot be paid by list position: that
  would pay whoever happens to hold that index). Its share is withheld and shared equally among
  the paid items, like the tier shortfall; if no item can be paid the list is empty;
- one `cruncher_rewards` item per cruncher index with a non-zero reward (a cruncher with two
  paid models gets the sum), in ranking order.
"""

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from coordinator_site.contract import EmissionTier, get_contract

FRAC64_TOTAL = 1_000_000_000
HUNDRED = Fraction(100)


def allocate_frac64(weights: Sequence[Fraction | int], *, total: int = FRAC64_TOTAL) -> list[int]:
    """Split `total` integer units in proportion to non-negative `weights`, exactly.

    Largest remainder: every item gets the floor of its exact share, then the units left over go
    one each to the largest fractional remainders; equal remainders go to the earlier item. An
    all-zero (or empty) weight list gets all zeros.
    """
    weights = [Fraction(w) for w in weights]
    if any(w < 0 for w in weights):
        raise ValueError("negative weight in an emission")
    if total < 0:
        raise ValueError("negative total in an emission")
    weight_sum = sum(weights, Fraction(0))
    if weight_sum == 0:
        return [0] * len(weights)
    exact = [w * total / weight_sum for w in weights]
    floors = [int(x) for x in exact]  # exact >= 0, so int() is floor
    left = total - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def tier_pct(position: int, tiers: Sequence[EmissionTier]) -> Fraction:
    """The percentage the tiers give to 1-based ranking `position` (0 beyond the last tier)."""
    for tier in tiers:
        if tier.first_rank <= position <= tier.last_rank:
            return Fraction(str(tier.pct_each))
    return Fraction(0)


def tiered_weights(ranking: Sequence[dict[str, Any]], tiers: Sequence[EmissionTier]) -> list[Fraction]:
    """Percent per ranking item under the tier rules (exact fractions summing to 100 or 0).

    Ranked items (rank not None) take consecutive positions in ranking order; items that share a
    rank share the total of the positions they occupy equally. The shortfall to 100 % is shared
    equally among the ranked items; if tiers add up to more than 100 % for this many items, all
    shares are scaled down to 100 %. Unranked items get 0.
    """
    ranked = [i for i, item in enumerate(ranking) if item.get("rank") is not None]
    weights = [Fraction(0)] * len(ranking)
    if not ranked:
        return weights
    groups: dict[Any, list[int]] = {}
    for position, index in enumerate(ranked, start=1):
        groups.setdefault(ranking[index]["rank"], []).append(position)
    for index in ranked:
        positions = groups[ranking[index]["rank"]]
        weights[index] = sum((tier_pct(p, tiers) for p in positions), Fraction(0)) / len(positions)
    allotted = sum(weights, Fraction(0))
    if allotted > HUNDRED:
        return [w * HUNDRED / allotted for w in weights]
    shortfall = (HUNDRED - allotted) / len(ranked)
    for index in ranked:
        weights[index] += shortfall
    return weights


def payable(item: dict[str, Any]) -> bool:
    return item.get("rank") is not None and item.get("cruncher_index") is not None


def withhold_unpayable(ranking: Sequence[dict[str, Any]], weights: Sequence[Fraction]) -> list[Fraction]:
    """Zero the weights of items without a cruncher index; share what they held equally among the payable."""
    paid = [i for i, item in enumerate(ranking) if payable(item)]
    result = [w if payable(item) else Fraction(0) for item, w in zip(ranking, weights, strict=True)]
    if not paid:
        return [Fraction(0)] * len(ranking)
    withheld = sum(weights, Fraction(0)) - sum(result, Fraction(0))
    for i in paid:
        result[i] += withheld / len(paid)
    return result


def provider_rewards(pubkey: str) -> list[dict[str, Any]]:
    """One provider paid 100 %, or nobody when the key is unset."""
    return [{"provider": pubkey, "reward_pct": FRAC64_TOTAL}] if pubkey else []


def emission_from_weights(
    ranking: Sequence[dict[str, Any]],
    weights: Sequence[Fraction],
    *,
    crunch_pubkey: str,
    compute_provider: str,
    data_provider: str,
) -> dict[str, Any]:
    """Round per-item weights to frac64 and assemble the EmissionCheckpoint (+ `model_rewards`)."""
    weights = withhold_unpayable(ranking, weights)
    amounts = allocate_frac64(weights)
    by_index: dict[int, int] = {}
    for item, amount in zip(ranking, amounts, strict=True):
        if payable(item):
            by_index[item["cruncher_index"]] = by_index.get(item["cruncher_index"], 0) + amount
    return {
        "crunch": crunch_pubkey or "",
        "cruncher_rewards": [
            {"cruncher_index": index, "reward_pct": pct} for index, pct in by_index.items() if pct > 0
        ],
        "compute_provider_rewards": provider_rewards(compute_provider),
        "data_provider_rewards": provider_rewards(data_provider),
        "model_rewards": [
            {"model_id": item["model_id"], "reward_pct": amount} for item, amount in zip(ranking, amounts, strict=True)
        ],
    }


def build_tiered_emission(
    ranking: list[dict[str, Any]], crunch_pubkey: str, compute_provider: str, data_provider: str
) -> dict[str, Any]:
    """Default EMISSION_BUILDER: the contract's tiers (starter: 35 %, 10 % x4, 5 % x5).

    Tied items share their positions' tiers equally; the shortfall when fewer items than tier
    positions are ranked is shared equally among the ranked.
    """
    weights = tiered_weights(ranking, get_contract().emission.tiers)
    return emission_from_weights(
        ranking, weights, crunch_pubkey=crunch_pubkey, compute_provider=compute_provider, data_provider=data_provider
    )


def build_proportional_emission(
    ranking: list[dict[str, Any]], crunch_pubkey: str, compute_provider: str, data_provider: str
) -> dict[str, Any]:
    """Alternative EMISSION_BUILDER: pay each ranked item in proportion to how far its score is
    from the worst ranked score (in the contract's ranking direction).

    The worst ranked item gets 0; if every ranked score is equal, the ranked share equally.
    """
    descending = get_contract().aggregation.ranking_direction == "desc"
    ranked = [i for i, item in enumerate(ranking) if item.get("rank") is not None and item.get("value") is not None]
    weights = [Fraction(0)] * len(ranking)
    if ranked:
        values = {i: Fraction(ranking[i]["value"]) for i in ranked}
        worst = min(values.values()) if descending else max(values.values())
        for i in ranked:
            weights[i] = abs(values[i] - worst)
        if sum(weights, Fraction(0)) == 0:
            for i in ranked:
                weights[i] = Fraction(1)
    return emission_from_weights(
        ranking, weights, crunch_pubkey=crunch_pubkey, compute_provider=compute_provider, data_provider=data_provider
    )
