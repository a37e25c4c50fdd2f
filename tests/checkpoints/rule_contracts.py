"""Contracts with eligibility and payout rules, for tests/checkpoints/test_rules_parity.py."""

from coordinator_site.contract import STARTER_CONTRACT, Eligibility, EmissionPart, EmissionSettings, TopN

TIERS = STARTER_CONTRACT.emission.tiers


def _with(**update):
    return STARTER_CONTRACT.model_copy(update=update)


MIN_PREDICTIONS = _with(eligibility=Eligibility(min_scored_predictions=8))
BEST_PER_CRUNCHER = _with(eligibility=Eligibility(best_model_per_cruncher=True))
BENCHMARK = _with(eligibility=Eligibility(benchmark_cutoff=True))
TOP_N = _with(
    emission=EmissionSettings(shape="top_n", top_n=TopN(n=3, alpha=1.0)),
    eligibility=Eligibility(min_scored_predictions=8, best_model_per_cruncher=True),
)
SPLIT = _with(
    emission=EmissionSettings(
        tiers=TIERS,
        split=[
            EmissionPart(name="short", weight_pct=60, scope_keys=["BTC-a"]),
            EmissionPart(name="long", weight_pct=40, scope_keys=["BTC-b"]),
        ],
    ),
    eligibility=Eligibility(min_scored_predictions=8, best_model_per_cruncher=True, benchmark_cutoff=True),
)
