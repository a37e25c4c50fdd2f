"""Snapshot summaries (MODEL_SCORE_AGGREGATOR default) and how partial summaries merge.

The aggregator is called as `aggregate_snapshot(results)` with the results of one model in one
snapshot period that a scoring batch just produced; one item per Score row:

    {"status": "SCORED" | "FAILED" | "ABSENT", "failure_reason": str, "success": bool,
     "value": float | None,   # Score.value, after the missing-answer policy
     "result": {...},         # the score_type fields (empty for failures)
     "scope_key": str}        # the prediction's scope

It returns a summary; the score worker merges it into the stored snapshot with
`merge_summaries`, so a snapshot grows with each batch without reloading earlier scores.
A custom aggregator must return the same mergeable shape: every mean `k` comes with a count
(`value_count` for the value field, `field_counts[k]` for the others); keys without a count are
replaced by the newest batch's value.
"""

import math
from typing import Any

from coordinator_site.contract import get_contract
from coordinator_site.exact import EXACT, decimal_text, exact, exact_mean, exact_sum, parse_decimal

NO_GROUND_TRUTH = "NO_GROUND_TRUTH"
# Failure reasons that are nobody's fault (no ground truth; an Input the node could not process):
# such predictions are not counted as asked.
NOT_ASKED = ("NO_GROUND_TRUTH", "INPUT_POISONED")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def aggregate_snapshot(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact sums and means of Score.value and of every numeric score field, plus coverage.

    - `value_sum` (exact decimal text of the non-null Score.values, penalised failures included:
      the policy decided their value; `exclude` leaves it null, so it is not summed), `value_count`,
      and `<value_field>` = value_sum / value_count rounded once;
    - `answered` (SCORED) / `asked` (all predictions except those that are nobody's fault:
      no ground truth, a poisoned Input) and `coverage` = answered / asked;
    - other numeric fields of successful results only (booleans are not numbers here), with
      `field_sums` and `field_counts`.
    Sums are exact, so merging summaries in any order gives the same bytes (DESIGN.md §12).
    """
    value_field = get_contract().aggregation.value_field
    values = [exact(item["value"]) for item in results if _is_number(item.get("value"))]
    answered = sum(1 for item in results if item.get("status") == "SCORED")
    asked = sum(1 for item in results if item.get("failure_reason") not in NOT_ASKED)
    sums: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for item in results:
        if not item.get("success"):
            continue
        for key, value in (item.get("result") or {}).items():
            if key != value_field and _is_number(value):
                sums[key] = EXACT.add(sums.get(key, 0), exact(value))
                counts[key] = counts.get(key, 0) + 1
    total = exact_sum(values)
    summary: dict[str, Any] = {
        value_field: exact_mean(total, len(values)),
        "value_sum": decimal_text(total),
        "value_count": len(values),
        "answered": answered,
        "asked": asked,
        "coverage": _ratio(answered, asked),
        "field_sums": {key: decimal_text(total) for key, total in sums.items()},
        "field_counts": counts,
    }
    for key, field_total in sums.items():
        summary[key] = exact_mean(field_total, counts[key])
    return summary


def scope_summaries(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scope_key of the results: exact `value_sum`, `value_count` and `answered` (SCORED).

    Written into snapshot summaries as `by_scope` when the contract splits its emission by scope,
    so a checkpoint ranks each part on the same scores as the leaderboard (docs/rules.md).
    """
    per_scope: dict[str, dict[str, Any]] = {}
    for item in results:
        row = per_scope.setdefault(str(item.get("scope_key") or ""), {"values": [], "answered": 0})
        if _is_number(item.get("value")):
            row["values"].append(exact(item["value"]))
        if item.get("status") == "SCORED":
            row["answered"] += 1
    return {
        scope: {
            "value_sum": decimal_text(exact_sum(row["values"])),
            "value_count": len(row["values"]),
            "answered": row["answered"],
        }
        for scope, row in sorted(per_scope.items())
    }


def merge_scope_summaries(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """`by_scope` of old + new: exact sums and counts added per scope (order-independent)."""
    merged: dict[str, Any] = {}
    old, new = old or {}, new or {}
    for scope in sorted(set(old) | set(new)):
        a, b = old.get(scope) or {}, new.get(scope) or {}
        merged[scope] = {
            "value_sum": decimal_text(
                EXACT.add(parse_decimal(a.get("value_sum") or "0"), parse_decimal(b.get("value_sum") or "0"))
            ),
            "value_count": int(a.get("value_count") or 0) + int(b.get("value_count") or 0),
            "answered": int(a.get("answered") or 0) + int(b.get("answered") or 0),
        }
    return merged


def _weighted(old_mean: Any, old_n: int, new_mean: Any, new_n: int) -> float | None:
    total = old_n + new_n
    if not total:
        return None
    return ((old_mean or 0.0) * old_n + (new_mean or 0.0) * new_n) / total


def _merged_mean(old: tuple, new: tuple) -> tuple[float | None, str | None]:
    """(mean, exact sum text or None) of two (mean, sum text or None, count) parts: exact from the
    sums when both carry one (a part without values counts as 0), else count-weighted (a custom
    aggregator's summary, or one written before exact sums: then no sum is kept)."""
    (old_mean, old_sum, old_n), (new_mean, new_sum, new_n) = old, new
    old_sum = "0" if old_sum is None and old_n == 0 else old_sum
    new_sum = "0" if new_sum is None and new_n == 0 else new_sum
    if old_sum is None or new_sum is None:
        return _weighted(old_mean, old_n, new_mean, new_n), None
    total = EXACT.add(parse_decimal(old_sum), parse_decimal(new_sum))
    return exact_mean(total, old_n + new_n), decimal_text(total)


def merge_summaries(old: dict[str, Any] | None, new: dict[str, Any], *, value_field: str) -> dict[str, Any]:
    """The summary of old + new results, from the two summaries.

    Exact and order-independent for summaries carrying sums (`value_sum`, `field_sums`, as
    `aggregate_snapshot` writes them); count-weighted means otherwise.
    """
    if not old:
        return dict(new)
    merged = {**old, **new}
    old_n, new_n = int(old.get("value_count") or 0), int(new.get("value_count") or 0)
    merged[value_field], value_sum = _merged_mean(
        (old.get(value_field), old.get("value_sum"), old_n), (new.get(value_field), new.get("value_sum"), new_n)
    )
    if value_sum is None:
        merged.pop("value_sum", None)  # the new batch's sum alone would be wrong
    else:
        merged["value_sum"] = value_sum
    merged["value_count"] = old_n + new_n
    merged["answered"] = int(old.get("answered") or 0) + int(new.get("answered") or 0)
    merged["asked"] = int(old.get("asked") or 0) + int(new.get("asked") or 0)
    merged["coverage"] = _ratio(merged["answered"], merged["asked"])
    old_counts, new_counts = old.get("field_counts") or {}, new.get("field_counts") or {}
    old_sums, new_sums = old.get("field_sums") or {}, new.get("field_sums") or {}
    counts, field_sums = {}, {}
    for key in sorted(set(old_counts) | set(new_counts)):
        o, n = int(old_counts.get(key, 0)), int(new_counts.get(key, 0))
        merged[key], field_sum = _merged_mean(
            (old.get(key), old_sums.get(key), o), (new.get(key), new_sums.get(key), n)
        )
        if field_sum is not None:
            field_sums[key] = field_sum
        counts[key] = o + n
    if "by_scope" in old or "by_scope" in new:
        merged["by_scope"] = merge_scope_summaries(old.get("by_scope"), new.get("by_scope"))
    merged["field_counts"] = counts
    if len(field_sums) == len(counts):
        merged["field_sums"] = field_sums
    else:
        merged.pop("field_sums", None)
    return merged
