"""The one ranking routine, used by the leaderboard and by checkpoints (LEADERBOARD_RANKER)."""

import math
from typing import Any

from coordinator_site.contract import Aggregation


def ranking_value(entry: dict[str, Any], key: str) -> float | None:
    """The entry's value for `key` (in `metrics`), or None when it has no finite number for it."""
    value = (entry.get("metrics") or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def rank_entries(entries: list[dict[str, Any]], aggregation: Aggregation) -> list[dict[str, Any]]:
    """Order entries by `metrics[aggregation.ranking_key]` in the contract's direction.

    Equal values share a rank (1, 2, 2, 4); among equals the order is by model_id, for display
    only. Entries without a finite value for the key are never ranked: they come last with
    `rank = None`. Returns new dicts with `rank` and `score_ranking` set.
    """
    key = aggregation.ranking_key
    descending = aggregation.ranking_direction == "desc"
    ranked, unranked = [], []
    for entry in entries:
        value = ranking_value(entry, key)
        (unranked if value is None else ranked).append((value, entry))
    ranked.sort(key=lambda pair: ((-pair[0] if descending else pair[0]), str(pair[1]["model_id"])))
    unranked.sort(key=lambda pair: str(pair[1]["model_id"]))
    result: list[dict[str, Any]] = []
    previous_value, previous_rank = None, 0
    for position, (value, entry) in enumerate(ranked, start=1):
        rank = previous_rank if value == previous_value else position
        previous_value, previous_rank = value, rank
        result.append(
            {
                **entry,
                "rank": rank,
                "score_ranking": {"key": key, "value": value, "direction": aggregation.ranking_direction},
            }
        )
    for _, entry in unranked:
        result.append(
            {
                **entry,
                "rank": None,
                "score_ranking": {"key": key, "value": None, "direction": aggregation.ranking_direction},
            }
        )
    return result
