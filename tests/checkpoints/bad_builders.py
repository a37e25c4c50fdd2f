"""EMISSION_BUILDER callables that break the money rules, for the refusal tests."""


def overpaying_builder(ranking, crunch_pubkey, compute_provider, data_provider):
    return {
        "crunch": crunch_pubkey,
        "cruncher_rewards": [
            {"cruncher_index": 1, "reward_pct": 600_000_000},
            {"cruncher_index": 2, "reward_pct": 500_000_000},
        ],
        "compute_provider_rewards": [],
        "data_provider_rewards": [],
    }


def negative_builder(ranking, crunch_pubkey, compute_provider, data_provider):
    return {
        "crunch": crunch_pubkey,
        "cruncher_rewards": [
            {"cruncher_index": 1, "reward_pct": 1_100_000_000},
            {"cruncher_index": 2, "reward_pct": -100_000_000},
        ],
        "compute_provider_rewards": [],
        "data_provider_rewards": [],
    }
