"""Who may be paid: the one eligibility routine of the leaderboard and the checkpoints.

`apply_eligibility(entries, rules)` takes ranked entries (LEADERBOARD_RANKER's output, in ranking
order) carrying `model_id`, `rank`, `cruncher_id`, `scored_count` and `is_benchmark`, and returns
new dicts with `eligible` (bool) and `ineligible_reasons` (list of codes, in this order):

- `unranked`: no finite value for the ranking key (never paid, as before);
- `benchmark`: the model is flagged `is_benchmark` (ranked and shown, never paid);
- `below_min_predictions`: fewer than `min_scored_predictions` scored predictions in the window
  (the leaderboard's ranking window, the checkpoint's period, a split part's scopes);
- `at_or_below_benchmark` (`benchmark_cutoff`): ranked at or below the best-ranked benchmark
  (a tie with the benchmark is not paid). Without a ranked benchmark nothing is cut;
- `not_best_of_cruncher` (`best_model_per_cruncher`): another model of the same cruncher is
  ranked better (or equal and earlier in ranking order) among the models that pass the rules above.
  A model without `cruncher_id` is its own cruncher.

The payout then ranks the eligible entries only (checkpoints.emission): an ineligible model keeps
its rank on the board but takes no payout position.
"""

from collections.abc import Sequence
from typing import Any

from coordinator_site.contract import Eligibility

UNRANKED = "unranked"
BENCHMARK = "benchmark"
BELOW_MIN_PREDICTIONS = "below_min_predictions"
AT_OR_BELOW_BENCHMARK = "at_or_below_benchmark"
NOT_BEST_OF_CRUNCHER = "not_best_of_cruncher"
REASONS = (UNRANKED, BENCHMARK, BELOW_MIN_PREDICTIONS, AT_OR_BELOW_BENCHMARK, NOT_BEST_OF_CRUNCHER)


def cruncher_key(entry: dict[str, Any]) -> str:
    cruncher_id = entry.get("cruncher_id") or ""
    return f"cruncher:{cruncher_id}" if cruncher_id else f"model:{entry['model_id']}"


def benchmark_rank(entries: Sequence[dict[str, Any]]) -> int | None:
    """The best (smallest) rank of a ranked benchmark entry, or None."""
    ranks = [e["rank"] for e in entries if e.get("is_benchmark") and e.get("rank") is not None]
    return min(ranks) if ranks else None


def apply_eligibility(entries: Sequence[dict[str, Any]], rules: Eligibility) -> list[dict[str, Any]]:
    """`entries` with `eligible` and `ineligible_reasons` set (new dicts, same order)."""
    cutoff = benchmark_rank(entries) if rules.benchmark_cutoff else None
    result = []
    for entry in entries:
        reasons = []
        rank = entry.get("rank")
        if rank is None:
            reasons.append(UNRANKED)
        if entry.get("is_benchmark"):
            reasons.append(BENCHMARK)
        if int(entry.get("scored_count") or 0) < rules.min_scored_predictions:
            reasons.append(BELOW_MIN_PREDICTIONS)
        if cutoff is not None and rank is not None and not entry.get("is_benchmark") and rank >= cutoff:
            reasons.append(AT_OR_BELOW_BENCHMARK)
        result.append({**entry, "ineligible_reasons": reasons})
    if rules.best_model_per_cruncher:
        seen: set[str] = set()
        for entry in result:
            if entry["ineligible_reasons"]:
                continue
            key = cruncher_key(entry)
            if key in seen:
                entry["ineligible_reasons"].append(NOT_BEST_OF_CRUNCHER)
            else:
                seen.add(key)
    for entry in result:
        entry["eligible"] = not entry["ineligible_reasons"]
    return result


def eligibility_summary(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per reason and the eligible model ids, for meta and the pages."""
    counts = {reason: 0 for reason in REASONS}
    for entry in entries:
        for reason in entry.get("ineligible_reasons") or []:
            counts[reason] = counts.get(reason, 0) + 1
    return {
        "eligible_count": sum(1 for e in entries if e.get("eligible")),
        "ineligible_by_reason": {k: v for k, v in counts.items() if v},
        "benchmark_rank": benchmark_rank(entries),
    }


def rank_parts(
    entries: Sequence[dict[str, Any]],
    *,
    parts: Sequence[Any],
    aggregation: Any,
    ranker: Any,
    rules: Eligibility,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each emission split part ranked on its own and judged by `apply_eligibility`.

    `entries` carry `model_id`, `cruncher_id`, `is_benchmark` and `part_stats[name] = {"value",
    "scored_count"}` (the mean and the scored predictions over the part's scopes). Returns
    `{model_id: {part name: {"rank", "value", "scored_count", "eligible", "ineligible_reasons"}}}`.
    """
    result: dict[str, dict[str, dict[str, Any]]] = {str(e["model_id"]): {} for e in entries}
    for part in parts:
        part_entries = []
        for entry in entries:
            stats = (entry.get("part_stats") or {}).get(part.name) or {}
            part_entries.append(
                {
                    "model_id": str(entry["model_id"]),
                    "cruncher_id": entry.get("cruncher_id") or "",
                    "is_benchmark": bool(entry.get("is_benchmark")),
                    "scored_count": int(stats.get("scored_count") or 0),
                    "metrics": {aggregation.ranking_key: stats.get("value")},
                }
            )
        judged = apply_eligibility(ranker(part_entries, aggregation), rules)
        for item in judged:
            result[item["model_id"]][part.name] = {
                "rank": item.get("rank"),
                "value": item["metrics"][aggregation.ranking_key],
                "scored_count": item["scored_count"],
                "eligible": item["eligible"],
                "ineligible_reasons": item["ineligible_reasons"],
            }
    return result
