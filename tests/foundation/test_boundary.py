"""The sanitising boundary: what is rejected (with which code) and what is escaped."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator_site.boundary import (
    NON_FINITE_NUMBER,
    NOT_JSON,
    OUT_OF_RANGE,
    TOO_DEEP,
    UNSTORABLE_TEXT,
    Rejected,
    clean_json,
    clean_number,
    clean_text,
    escape_text,
    text_problem,
)

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_docs = st.recursive(
    json_leaves, lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=20
)


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfffy"])
def test_unstorable_text_is_rejected(text):
    with pytest.raises(Rejected) as caught:
        clean_text(text, field="detail")
    assert caught.value.code == UNSTORABLE_TEXT


@pytest.mark.parametrize(
    ("value", "code"),
    [(math.nan, NON_FINITE_NUMBER), (math.inf, NON_FINITE_NUMBER), (1e308, OUT_OF_RANGE), (10**400, OUT_OF_RANGE)],
)
def test_numbers_that_break_a_sum_are_rejected(value, code):
    with pytest.raises(Rejected) as caught:
        clean_number(value, field="value", max_abs=1e12)
    assert caught.value.code == code


def test_minimum_is_checked():
    assert clean_number(1, field="price", max_abs=1e12, minimum=0, exclusive_minimum=True) == 1.0
    with pytest.raises(Rejected):
        clean_number(0, field="price", max_abs=1e12, minimum=0, exclusive_minimum=True)


def test_json_names_the_offending_path():
    with pytest.raises(Rejected) as caught:
        clean_json({"a": [1, {"b": "\x00"}]}, field="output")
    assert caught.value.code == UNSTORABLE_TEXT
    assert "output.a[1].b" in caught.value.detail
    with pytest.raises(Rejected) as caught:
        clean_json({1: 2}, field="output")
    assert caught.value.code == NOT_JSON


def test_deep_nesting_is_rejected_without_recursion():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(Rejected) as caught:
        clean_json(deep, field="output")
    assert caught.value.code == TOO_DEEP


@given(st.text())
def test_escaped_text_is_always_storable(text):
    escaped = escape_text(text)
    assert text_problem(escaped) is None
    assert len(escaped) <= 2000


@given(json_docs)
def test_clean_json_accepts_exactly_what_postgres_can_store(doc):
    try:
        result = clean_json(doc, field="doc")
    except Rejected as exc:
        code = exc.code
    else:
        code = None
        assert result is doc
    assert code in {None, UNSTORABLE_TEXT, NON_FINITE_NUMBER, OUT_OF_RANGE}
