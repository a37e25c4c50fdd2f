"""Snapshot summaries (MODEL_SCORE_AGGREGATOR default) and how partial summaries merge.

The aggregator is called as `aggregate_snapshot(results)` with the results of one model in one
snapshot period that a scoring batch just produced; one item per Score row:

    {"status": "SCORED" | "FAILED" | "ABSENT", "failure_reason": str, "success": bool,
     "value": float | None,   # Score.value, after the missing-answer policy
     "result": {...}}         # the score_type fields (empty for failures)

It returns a summary; the score worker merges it into the stored snapshot with
`merge_summaries`, so a snapshot grows with each batch without reloading earlier scores.
A custom aggregator must return the same mergeable shape: every mean `k` comes with a count
(`value_count` for the value field, `field_counts[k]` for the others); keys without a count are
replaced by the newest batch's value.
"""

import math
from typing import Any

from coordinator_site.contract import get_contract

NO_GROUND_TRUTH = "NO_GROUND_TRUTH"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def aggregate_snapshot(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Count-weighted means of Score.value and of every numeric score field, plus coverage.

    - `<value_field>`: mean of every non-null Score.value, penalised failures included (the
      policy decided their value; `exclude` leaves it null, so they are not averaged in);
    - `value_count`: how many values that mean covers;
    - `answered` (SCORED) / `asked` (all predictions except those whose Input had no ground
      truth, which is nobody's fault) and `coverage` = answered / asked;
    - other numeric fields of successful results only (booleans are not numbers here), with
      `field_counts`.
    """
    value_field = get_contract().aggregation.value_field
    values = [item["value"] for item in results if _is_number(item.get("value"))]
    answered = sum(1 for item in results if item.get("status") == "SCORED")
    asked = sum(1 for item in results if item.get("failure_reason") != NO_GROUND_TRUTH)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for item in results:
        if not item.get("success"):
            continue
        for key, value in (item.get("result") or {}).items():
            if key != value_field and _is_number(value):
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
    summary: dict[str, Any] = {
        value_field: _ratio(math.fsum(values), len(values)),
        "value_count": len(values),
        "answered": answered,
        "asked": asked,
        "coverage": _ratio(answered, asked),
        "field_counts": counts,
    }
    for key, total in sums.items():
        summary[key] = total / counts[key]
    return summary


def _weighted(old_mean: Any, old_n: int, new_mean: Any, new_n: int) -> float | None:
    total = old_n + new_n
    if not total:
        return None
    return ((old_mean or 0.0) * old_n + (new_mean or 0.0) * new_n) / total


def merge_summaries(old: dict[str, Any] | None, new: dict[str, Any], *, value_field: str) -> dict[str, Any]:
    """The summary of old + new results, from the two summaries (count-weighted, exact up to rounding)."""
    if not old:
        return dict(new)
    merged = {**old, **new}
    old_n, new_n = int(old.get("value_count") or 0), int(new.get("value_count") or 0)
    merged[value_field] = _weighted(old.get(value_field), old_n, new.get(value_field), new_n)
    merged["value_count"] = old_n + new_n
    merged["answered"] = int(old.get("answered") or 0) + int(new.get("answered") or 0)
    merged["asked"] = int(old.get("asked") or 0) + int(new.get("asked") or 0)
    merged["coverage"] = _ratio(merged["answered"], merged["asked"])
    old_counts, new_counts = old.get("field_counts") or {}, new.get("field_counts") or {}
    counts = {}
    for key in sorted(set(old_counts) | set(new_counts)):
        o, n = int(old_counts.get(key, 0)), int(new_counts.get(key, 0))
        merged[key] = _weighted(old.get(key), o, new.get(key), n)
        counts[key] = o + n
    merged["field_counts"] = counts
    return merged
