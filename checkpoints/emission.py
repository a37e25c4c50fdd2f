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
- an item with `eligible` false (docs/rules.md: minimum predictions, best model per cruncher,
  benchmark cutoff) takes no payout position and is never paid;
- one `cruncher_rewards` item per cruncher index with a non-zero reward (a cruncher with two
  paid models gets the sum), in ranking order.
"""

from collections.abc import Sequence
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any

from coordinator_site.contract import EmissionSettings, EmissionTier, TopN, get_contract

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


def top_n_weights(ranking: Sequence[dict[str, Any]], top_n: TopN) -> list[Fraction]:
    """Weights under the top-N shape, as percent summing to 100 (or all 0 with nobody ranked).

    Ranked items take consecutive positions in ranking order; position p <= n weighs
    exp(alpha / p), later positions 0; items sharing a rank share the total of the positions they
    occupy equally (as tiers do), so a tie straddling position n shares what position n weighs.
    exp is evaluated in decimal arithmetic (40 significant digits, correctly rounded), so the
    weights are the same on every platform; they are then normalised to 100 exactly.
    """
    ranked = [i for i, item in enumerate(ranking) if item.get("rank") is not None]
    weights = [Fraction(0)] * len(ranking)
    if not ranked:
        return weights
    context = Context(prec=40)
    alpha = Decimal(repr(float(top_n.alpha)))

    def position_weight(position: int) -> Fraction:
        if position > top_n.n:
            return Fraction(0)
        return Fraction(context.exp(context.divide(alpha, Decimal(position))))

    groups: dict[Any, list[int]] = {}
    for position, index in enumerate(ranked, start=1):
        groups.setdefault(ranking[index]["rank"], []).append(position)
    for index in ranked:
        positions = groups[ranking[index]["rank"]]
        weights[index] = sum((position_weight(p) for p in positions), Fraction(0)) / len(positions)
    total = sum(weights, Fraction(0))
    return [w * HUNDRED / total for w in weights]


def shape_weights(ranking: Sequence[dict[str, Any]], emission: EmissionSettings) -> list[Fraction]:
    """Percent per ranking item under the contract's payout shape, over the eligible items only.

    Payout positions are taken by the ranked items that are eligible (`eligible` absent counts as
    eligible: rankings built without eligibility rules), in ranking order; ineligible items get 0
    and take no position, so the next eligible model moves up into the tier it leaves.
    """
    chosen = [i for i, item in enumerate(ranking) if item.get("rank") is not None and item.get("eligible", True)]
    sub = [ranking[i] for i in chosen]
    if emission.shape == "top_n":
        sub_weights = top_n_weights(sub, emission.top_n)
    else:
        sub_weights = tiered_weights(sub, emission.tiers)
    weights = [Fraction(0)] * len(ranking)
    for i, w in zip(chosen, sub_weights, strict=True):
        weights[i] = w
    return weights


def payable(item: dict[str, Any]) -> bool:
    return item.get("rank") is not None and item.get("cruncher_index") is not None and item.get("eligible", True)


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
    amounts = allocate_frac64(withhold_unpayable(ranking, weights))
    return emission_from_amounts(
        ranking, amounts, crunch_pubkey=crunch_pubkey, compute_provider=compute_provider, data_provider=data_provider
    )


def emission_from_amounts(
    ranking: Sequence[dict[str, Any]],
    amounts: Sequence[int],
    *,
    crunch_pubkey: str,
    compute_provider: str,
    data_provider: str,
) -> dict[str, Any]:
    """Assemble the EmissionCheckpoint (+ `model_rewards`) from frac64 amounts per ranking item."""
    by_index: dict[int, int] = {}
    for item, amount in zip(ranking, amounts, strict=True):
        # amounts already pay nobody excluded (0); a split pays models by their parts' eligibility
        if amount and item.get("cruncher_index") is not None:
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


def part_view(ranking: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The ranking as split part `name` sees it: each item's part rank and eligibility, ordered by
    part rank (unranked last; model_id among equals, as the ranker orders them)."""
    view = []
    for item in ranking:
        part = (item.get("parts") or {}).get(name) or {}
        view.append({**item, "rank": part.get("rank"), "eligible": part.get("eligible", True)})
    view.sort(key=lambda item: (item["rank"] is None, item["rank"] or 0, str(item["model_id"])))
    return view


def part_amounts(ranking: Sequence[dict[str, Any]], emission: EmissionSettings) -> dict[str, dict[str, int]]:
    """Per split part: frac64 per model_id, each part's own payout (Σ = 1e9, or all 0 when the part
    has nobody payable)."""
    result = {}
    for part in emission.split:
        view = part_view(ranking, part.name)
        amounts = allocate_frac64(withhold_unpayable(view, shape_weights(view, emission)))
        result[part.name] = {str(item["model_id"]): amount for item, amount in zip(view, amounts, strict=True)}
    return result


def combine_parts(
    ranking: Sequence[dict[str, Any]], per_part: dict[str, dict[str, int]], emission: EmissionSettings
) -> list[int]:
    """The combined frac64 per ranking item: sum over parts of weight_pct x the part's amount,
    rounded once more by largest remainder (Σ = 1e9 exactly). A part that pays nobody leaves its
    weight to the others (the weights are renormalised over the parts that pay)."""
    weights = [
        sum(
            (
                Fraction(str(part.weight_pct)) * per_part[part.name].get(str(item["model_id"]), 0)
                for part in emission.split
            ),
            Fraction(0),
        )
        for item in ranking
    ]
    return allocate_frac64(weights)


def build_tiered_emission(
    ranking: list[dict[str, Any]], crunch_pubkey: str, compute_provider: str, data_provider: str
) -> dict[str, Any]:
    """Default EMISSION_BUILDER: the contract's payout shape over the eligible models.

    `emission.shape` "tiers" (starter: 35 %, 10 % x4, 5 % x5; the shortfall when fewer items than
    tier positions are paid is shared equally among them) or "top_n" (exp(alpha / position)).
    Tied items share their positions equally. With `emission.split`, each part is paid on its own
    ranking (`parts` of the ranking items) and the parts are combined by weight; the per-part
    lists are returned as `part_rewards` (the service moves them onto the ranking items).
    """
    keys = {"crunch_pubkey": crunch_pubkey, "compute_provider": compute_provider, "data_provider": data_provider}
    return shaped_emission(ranking, get_contract().emission, **keys)


def shaped_emission(ranking: list[dict[str, Any]], emission: EmissionSettings, **keys: str) -> dict[str, Any]:
    """`build_tiered_emission` with explicit emission settings (a pure function of its arguments)."""
    if not emission.split:
        return emission_from_weights(ranking, shape_weights(ranking, emission), **keys)
    per_part = part_amounts(ranking, emission)
    result = emission_from_amounts(ranking, combine_parts(ranking, per_part, emission), **keys)
    result["part_rewards"] = {
        name: [{"model_id": str(item["model_id"]), "reward_pct": amounts[str(item["model_id"])]} for item in ranking]
        for name, amounts in per_part.items()
    }
    return result


def build_proportional_emission(
    ranking: list[dict[str, Any]], crunch_pubkey: str, compute_provider: str, data_provider: str
) -> dict[str, Any]:
    """Alternative EMISSION_BUILDER: pay each ranked item in proportion to how far its score is
    from the worst ranked score (in the contract's ranking direction).

    The worst ranked item gets 0; if every ranked score is equal, the ranked share equally.
    Only eligible items count (the worst is the worst eligible one); a split is not applied here.
    """
    descending = get_contract().aggregation.ranking_direction == "desc"
    ranked = [
        i
        for i, item in enumerate(ranking)
        if item.get("rank") is not None and item.get("value") is not None and item.get("eligible", True)
    ]
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
