"""Property (issue 20): whatever junk a page mixes in, ingest stores exactly its good records, rejects
each bad one with a reason code, and the stream keeps working -- through the real ingest path into the
database (PostgreSQL and SQLite)."""

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator_site import boundary
from feeds.dims import NormalizedRecord
from feeds.models import FeedIngestionState, FeedRecord
from feeds.providers import base
from feeds.providers.base import MAX_PRICE, collect_rejections
from feeds.services import ingest_records
from tests.factories import T0

REASON_CODES = {
    boundary.UNSTORABLE_TEXT,
    boundary.NON_FINITE_NUMBER,
    boundary.OUT_OF_RANGE,
    boundary.NOT_JSON,
    boundary.TOO_LARGE,
    boundary.TOO_DEEP,
    base.MISSING_FIELD,
    base.NOT_A_NUMBER,
    base.BAD_TIMESTAMP,
    base.INCONSISTENT_CANDLE,
    base.MALFORMED,
}

# Storable subjects, control characters included (PostgreSQL stores any character but NUL).
GOOD_SUBJECTS = st.sampled_from(["BTC", "ETH", "B\x01C\x1f", "é€"])
GOOD_PRICES = st.floats(min_value=5e-324, max_value=MAX_PRICE, allow_nan=False, allow_infinity=False)
GOOD_METAS = st.one_of(
    st.just({}),
    st.dictionaries(
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(10**12), 10**12),
            st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=50),
        ),
        max_size=3,
    ),
)
NUL_TEXT = st.text(max_size=5).map(lambda t: t + "\x00")
SURROGATE_TEXT = st.sampled_from(["\ud800", "1\udfff", "\udc80abc"])
BAD_PRICES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 0, 1e308, 10**400, -(10**400), True, None]),
    st.floats(max_value=0.0, allow_nan=False),
    st.floats(min_value=MAX_PRICE, exclude_min=True),
    st.sampled_from(["abc", "", "nan", "-inf", "1e999", "0", "-5", "0x10", "1" * 100_000]),
    NUL_TEXT,
    SURROGATE_TEXT,
    st.sampled_from([[1.0], {"v": 1.0}, (1.0,), b"1.0", {1.0}, object()]),
)


def deep(depth: int):
    doc: object = 1
    for _ in range(depth):
        doc = {"a": doc}
    return doc


BAD_METAS = st.one_of(
    st.sampled_from(
        [
            {"slot": math.nan},
            {"slot": math.inf},
            {"slot": 10**400},
            {"slot": 1e300},
            {1: "int key"},
            {"note": "x" * 5000},
            {"nested": deep(40)},
            {"obj": object()},
            {"set": {1, 2}},
            "not an object",
            [1, 2],
        ]
    ),
    NUL_TEXT.map(lambda t: {"symbol": t}),
    SURROGATE_TEXT.map(lambda t: {t: 1}),
)


def tick(subject, ts, values, meta=None) -> NormalizedRecord:
    return NormalizedRecord("binance", subject, "tick", "1s", ts, values, {} if meta is None else meta)


@st.composite
def good_item(draw):
    price = draw(GOOD_PRICES)
    as_text = draw(st.booleans())
    return ("good", draw(GOOD_SUBJECTS), repr(price) if as_text else price, draw(GOOD_METAS))


@st.composite
def bad_item(draw):
    """A function of ts_event that builds one record (or something that is not one) with exactly one flaw."""
    flaw = draw(st.sampled_from(["price", "subject", "meta", "ts_event", "values", "kind", "extra", "not_a_record"]))
    if flaw == "price":
        price = draw(BAD_PRICES)
        return ("bad", lambda ts: tick("BTC", ts, {"price": price}))
    if flaw == "subject":
        subject = draw(st.one_of(NUL_TEXT, SURROGATE_TEXT, st.just("S" * 65), st.just(42), st.just(None)))
        return ("bad", lambda ts: tick(subject, ts, {"price": 1.0}))
    if flaw == "meta":
        meta = draw(BAD_METAS)
        return ("bad", lambda ts: tick("BTC", ts, {"price": 1.0}, meta))
    if flaw == "ts_event":
        wrong = draw(st.sampled_from(["naive", "text", "none", "far", "early"]))
        stamps = {
            "naive": lambda ts: ts.replace(tzinfo=None),
            "text": lambda ts: ts.isoformat(),
            "none": lambda ts: None,
            "far": lambda ts: ts.replace(year=9999),
            "early": lambda ts: ts.replace(year=1900),
        }
        return ("bad", lambda ts: tick("BTC", stamps[wrong](ts), {"price": 1.0}))
    if flaw == "values":
        values = draw(st.sampled_from([None, [], "price=1", 1.0, {"close": 1.0}, {}]))
        return ("bad", lambda ts: tick("BTC", ts, values))
    if flaw == "kind":
        kind = draw(st.sampled_from(["bar", "", "tick\x00", "candle" * 10]))
        return ("bad", lambda ts: NormalizedRecord("binance", "BTC", kind, "1s", ts, {"price": 1.0}, {}))
    if flaw == "extra":
        extra = draw(
            st.sampled_from(
                [{"\x00": 1.0}, {"\ud800": 1.0}, {"k" * 65: 1.0}, {"conf": math.nan}, {"conf": 1e16}, {"conf": "x"}]
            )
        )
        return ("bad", lambda ts: tick("BTC", ts, {"price": 1.0, **extra}))
    junk = draw(st.sampled_from([None, "record", 1.0, {"price": 1.0}, ("binance", "BTC")]))
    return ("bad", lambda ts: junk)


PAGES = st.lists(st.one_of(good_item(), bad_item()), min_size=1, max_size=25)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=PAGES)
def test_a_page_mixing_good_and_adversarial_records_stores_exactly_the_good_ones(page):
    FeedRecord.objects.all().delete()
    FeedIngestionState.objects.all().delete()
    records, expected = [], {}
    for i, item in enumerate(page):
        ts = T0 + timedelta(seconds=i)
        if item[0] == "good":
            _, subject, price, meta = item
            records.append(tick(subject, ts, {"price": price}, meta))
            expected[(subject, ts)] = ({"price": float(price)}, meta)
        else:
            records.append(item[1](ts))
    bad = len(records) - len(expected)

    with collect_rejections() as rejected:
        assert ingest_records(records) == len(expected)

    assert rejected.total == bad
    assert set(rejected.counts) <= REASON_CODES
    stored = {(r.subject, r.ts_event): (r.values, r.meta) for r in FeedRecord.objects.all()}
    assert stored == expected
    for subject in {subject for subject, _ in expected}:
        state = FeedIngestionState.objects.get(source="binance", subject=subject, kind="tick", granularity="1s")
        assert state.record_count == sum(1 for s, _ in expected if s == subject)
        assert state.last_event_ts == max(ts for s, ts in expected if s == subject)

    # The stream still works: the next page is stored as usual.
    later = T0 + timedelta(hours=1)
    assert ingest_records([tick("BTC", later, {"price": 68000.5})]) == 1
    assert FeedRecord.objects.get(subject="BTC", ts_event=later).values == {"price": 68000.5}
    assert FeedIngestionState.objects.get(subject="BTC").last_event_ts == later
