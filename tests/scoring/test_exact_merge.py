"""Snapshot summaries merge exactly: any split and order of the same results gives the same bytes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.aggregation import aggregate_snapshot, merge_summaries
from scoring.hashing import canonical_json

pytestmark = pytest.mark.django_db

items = st.lists(
    st.builds(
        lambda v, ok: {
            "status": "SCORED" if ok else "FAILED",
            "failure_reason": "" if ok else "TIMEOUT",
            "success": ok,
            "value": v,
            "result": {"value": v, "p_up": abs(v) % 1} if ok else {},
        },
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(results=items, cut=st.integers(min_value=0, max_value=30), seed=st.randoms())
def test_any_split_and_order_merge_to_the_same_bytes(results, cut, seed):
    whole = aggregate_snapshot(results)
    shuffled = list(results)
    seed.shuffle(shuffled)
    cut = min(cut, len(shuffled))
    parts = [p for p in (shuffled[:cut], shuffled[cut:]) if p]
    merged = None
    for part in reversed(parts):
        merged = merge_summaries(merged, aggregate_snapshot(part), value_field="value")
    assert canonical_json(merged) == canonical_json(whole)


def test_a_summary_without_sums_merges_by_weight_and_keeps_no_partial_sum():
    legacy = {"value": 0.5, "value_count": 2, "answered": 2, "asked": 2, "coverage": 1.0, "field_counts": {}}
    new = aggregate_snapshot([{"status": "SCORED", "failure_reason": "", "success": True, "value": 0.25, "result": {}}])
    merged = merge_summaries(legacy, new, value_field="value")
    assert merged["value"] == pytest.approx(1.25 / 3)
    assert merged["value_count"] == 3
    assert "value_sum" not in merged  # the new batch's sum alone would be wrong
