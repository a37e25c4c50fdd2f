"""The contract `make demo` runs (CRUNCH_CONTRACT in .env.demo): the starter contract with
leaderboard windows short enough to differ within minutes (2, 5 and 15 minutes instead of 24,
72 and 168 hours), so the three columns of the demo's leaderboard are not identical."""

from coordinator_site.contract import STARTER_CONTRACT, AggregationWindow

DEMO_CONTRACT = STARTER_CONTRACT.model_copy(
    update={
        "aggregation": STARTER_CONTRACT.aggregation.model_copy(
            update={
                "windows": {
                    "score_recent": AggregationWindow(hours=2 / 60),
                    "score_steady": AggregationWindow(hours=5 / 60),
                    "score_anchor": AggregationWindow(hours=15 / 60),
                }
            }
        )
    }
)
