"""Contracts the score-pass and CRPS tests wire in through CRUNCH_CONTRACT."""

from coordinator_site.contract import STARTER_CONTRACT, ScorePassSettings
from scoring.distributions import EnsembleForecast, QuantileForecast, quantile_forecast_type

_CALLABLES = STARTER_CONTRACT.callables

# CRPS on quantiles of the return, per-Input normalised: best 1, worst 5 % 0 (ranked desc).
CRPS_QUANTILE_NORMALISED = STARTER_CONTRACT.model_copy(
    update={
        "name": "CRPS quantile, normalised",
        "output_type": QuantileForecast,
        "aggregation": STARTER_CONTRACT.aggregation.model_copy(update={"ranking_direction": "desc"}),
        "score_pass": ScorePassSettings(mode="normalise", raw_direction="asc"),
        "callables": {**_CALLABLES, "SCORING_FUNCTION": "scoring.functions:crps_quantile_score"},
    }
)

# CRPS on samples of the return, raw (a loss, ranked asc); no pass unless SCORE_PASS sets one.
CRPS_ENSEMBLE = STARTER_CONTRACT.model_copy(
    update={
        "name": "CRPS ensemble",
        "output_type": EnsembleForecast,
        "callables": {**_CALLABLES, "SCORING_FUNCTION": "scoring.functions:crps_ensemble_score"},
    }
)

# Brier, ranked desc after normalising (raw direction asc); also used to test SCORE_PASS overrides.
BRIER_NORMALISED = STARTER_CONTRACT.model_copy(
    update={
        "aggregation": STARTER_CONTRACT.aggregation.model_copy(update={"ranking_direction": "desc"}),
        "score_pass": ScorePassSettings(mode="normalise", raw_direction="asc", cap_percentile=90),
    }
)

# The example contract of docs/rules.md: a fixed grid of levels, normalised per Input.
CRPS_QUANTILE_GRID = STARTER_CONTRACT.model_copy(
    update={
        "name": "BTC return distribution",
        "output_type": quantile_forecast_type([0.05, 0.25, 0.5, 0.75, 0.95]),
        "aggregation": STARTER_CONTRACT.aggregation.model_copy(update={"ranking_direction": "desc"}),
        "score_pass": ScorePassSettings(mode="normalise", raw_direction="asc"),
        "callables": {**_CALLABLES, "SCORING_FUNCTION": "scoring.functions:crps_quantile_score"},
    }
)
