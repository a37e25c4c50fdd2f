"""ingest_records: one bulk upsert + watermark per transaction; idempotent; bad records rejected one by one."""

import json
import logging
import math
from datetime import timedelta

import pytest
from django.db import connection

from feeds import services
from feeds.dims import NormalizedRecord
from feeds.models import FeedIngestionState, FeedRecord
from feeds.selectors import feed_summaries
from feeds.services import ingest_records, prune_records
from tests.factories import T0
from tests.feeds.helpers import candle, dims

pytestmark = pytest.mark.django_db

D = dims()


def tape():
    return list(FeedRecord.objects.order_by("ts_event").values_list("ts_event", "values"))


def test_ingesting_the_same_page_twice_leaves_the_same_rows():
    page = [candle(i, 100 + i) for i in range(5)]
    assert ingest_records(page) == 5
    first = tape()
    ids = set(FeedRecord.objects.values_list("id", flat=True))
    assert ingest_records(page) == 5
    assert tape() == first
    assert set(FeedRecord.objects.values_list("id", flat=True)) == ids
    assert FeedIngestionState.objects.get(**D.as_filter()).record_count == 5


def test_out_of_order_records_and_corrections_are_fine():
    ingest_records([candle(3, 103), candle(0, 100), candle(2, 102)])
    ingest_records([candle(1, 101), candle(2, 202)])  # fills a hole and corrects a bar
    assert [v["close"] for _, v in tape()] == [100, 101, 202, 103]
    state = FeedIngestionState.objects.get(**D.as_filter())
    assert state.last_event_ts == T0 + timedelta(minutes=3)
    assert state.record_count == 4


def test_duplicates_inside_one_page_keep_the_last():
    assert ingest_records([candle(0, 100), candle(0, 111)]) == 1
    assert tape() == [(T0, candle(0, 111).values)]


def test_the_watermark_never_moves_backwards():
    ingest_records([candle(60)])
    moved_at = FeedIngestionState.objects.get(**D.as_filter()).updated_at
    ingest_records([candle(i) for i in range(10)])  # old history arrives later
    state = FeedIngestionState.objects.get(**D.as_filter())
    assert state.last_event_ts == T0 + timedelta(minutes=60)
    assert state.updated_at == moved_at  # watermark_updated_at: only when it moves
    assert state.record_count == 11


def test_garbage_is_rejected_per_record_with_a_reason_and_good_records_are_kept(caplog):
    good = candle(0)
    bad = [
        NormalizedRecord(
            "synthetic", "BTC", "candle", "1m", T0 + timedelta(minutes=1), {"open": 1, "high": 2, "low": 0.5}
        ),
        NormalizedRecord(
            "synthetic",
            "BTC",
            "candle",
            "1m",
            T0 + timedelta(minutes=2),
            {"open": "x", "high": 2, "low": 0.5, "close": 1},
        ),
        NormalizedRecord(
            "synthetic",
            "BTC",
            "candle",
            "1m",
            T0 + timedelta(minutes=3),
            {"open": math.nan, "high": 2, "low": 0.5, "close": 1},
        ),
        NormalizedRecord("synthetic", "BTC", "tick", "1s", T0, {"price": math.inf}),
        NormalizedRecord("synthetic", "BTC", "tick", "1s", T0.replace(tzinfo=None), {"price": 1}),
    ]
    with caplog.at_level(logging.WARNING, logger="feeds"):
        assert ingest_records([*bad[:2], good, *bad[2:]]) == 1
    assert tape() == [(T0, good.values)]
    [reasons] = [r.getMessage() for r in caplog.records]  # one warning for the page, not one per row
    assert reasons.startswith("rejected 5 of 6 record(s) from ingest:")
    assert "MISSING_FIELD x1 (missing field 'close')" in reasons
    assert "NOT_A_NUMBER x1 (values.open is not a number: 'x')" in reasons
    assert "NON_FINITE_NUMBER x2 (values.open is nan | values.price is inf)" in reasons
    assert "BAD_TIMESTAMP x1 (ts_event must be an aware datetime" in reasons


def test_numeric_strings_are_stored_as_numbers():
    record = NormalizedRecord("binance", "BTC", "tick", "1s", T0, {"price": "68512.34000000"})
    ingest_records([record])
    assert FeedRecord.objects.get().values == {"price": 68512.34}


def test_one_call_writes_several_streams_each_with_its_own_watermark():
    other = dims(granularity="5m")
    ingest_records([candle(0), candle(5, d=other), candle(10, d=other)])
    marks = dict(FeedIngestionState.objects.values_list("granularity", "last_event_ts"))
    assert marks == {"1m": T0, "5m": T0 + timedelta(minutes=10)}


def test_retention_deletes_old_records_in_batches_and_keeps_counts(settings):
    ingest_records([candle(i) for i in range(25)])
    deleted = prune_records(older_than=T0 + timedelta(minutes=20), batch_size=7, max_batches=10)
    assert deleted == 20
    assert [t for t, _ in tape()] == [T0 + timedelta(minutes=i) for i in range(20, 25)]
    assert FeedIngestionState.objects.get(**D.as_filter()).record_count == 5
    # The batch budget bounds one call; the rest goes on the next one.
    ingest_records([candle(i) for i in range(20)])
    assert prune_records(older_than=T0 + timedelta(minutes=20), batch_size=5, max_batches=2) == 10


def test_feed_summaries_have_the_agreed_keys_and_no_count_scan(settings, django_assert_max_num_queries):
    settings.FEED_SOURCE, settings.FEED_SUBJECTS, settings.FEED_KIND, settings.FEED_GRANULARITY = (
        "synthetic",
        ["BTC", "ETH"],
        "candle",
        "1m",
    )
    ingest_records([candle(i) for i in range(3)])
    with django_assert_max_num_queries(1 + 2 * 2):
        summaries = feed_summaries()
    assert [s["subject"] for s in summaries] == ["BTC", "ETH"]
    btc, eth = summaries
    assert set(btc) == {
        "source",
        "subject",
        "kind",
        "granularity",
        "record_count",
        "oldest_ts",
        "newest_ts",
        "watermark_ts",
        "watermark_updated_at",
        "last_polled_at",
        "last_error",
    }
    assert (btc["record_count"], btc["oldest_ts"], btc["newest_ts"]) == (3, T0, T0 + timedelta(minutes=2))
    assert btc["watermark_ts"] == T0 + timedelta(minutes=2)
    assert (eth["record_count"], eth["oldest_ts"], eth["watermark_ts"]) == (0, None, None)


def test_values_and_meta_are_encoded_exactly_as_json_dumps_would():
    encoder = services._PgEncoder()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for values in (
        {"open": 1.0, "high": 2.5, "low": 0.1 + 0.2, "close": 1e-07, "volume": 1e22},
        {"price": 5e-324, 'we"ird\\key %s %%': 1.7976931348623157e308, "é€": -0.0},
        {1: 2.0, "price": 3.0},  # a non-string key: json.dumps' own rules
    ):
        assert encoder.values_json(values) == dumps(values)
    for meta in ({}, None, {"seed": 1}, {"nested": [1, {"a": None}]}, {"q": 'x"y\\z'}):
        assert encoder.meta_json(meta) == dumps(meta or {})


def test_odd_keys_floats_and_metas_survive_the_round_trip():
    values = {"price": 0.1 + 0.2, 'we"ird\\key %s': 68512.34, "é€": 5e-324, "tiny": 1e-07}
    metas = [{"seed": 1}, {"nested": [1, {"a": None}]}, {}, {"q": 'x"y\\z,{}'}]
    page = [
        NormalizedRecord("binance", "BTC", "tick", "1s", T0 + timedelta(seconds=i), values, meta)
        for i, meta in enumerate(metas)
    ]
    assert ingest_records(page) == 4
    stored = list(FeedRecord.objects.order_by("ts_event").values_list("values", "meta"))
    assert stored == [(values, meta) for meta in metas]


def test_pages_larger_than_one_statement_keep_the_last_duplicate_and_count_new_rows(monkeypatch):
    monkeypatch.setattr(services, "PG_CHUNK", 3)
    other = NormalizedRecord(D.source, D.subject, D.kind, D.granularity, T0, candle(0).values, {"from": "other"})
    page = [candle(i, 100 + i) for i in range(10)] + [candle(4, 555), other]
    assert ingest_records(page) == 10
    assert [v["close"] for _, v in tape()] == [100, 101, 102, 103, 555, 105, 106, 107, 108, 109]
    assert FeedRecord.objects.get(ts_event=T0).meta == {"from": "other"}
    assert ingest_records(page + [candle(i) for i in range(10, 17)]) == 17
    assert FeedIngestionState.objects.get(**D.as_filter()).record_count == 17
    assert FeedRecord.objects.count() == 17


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plain-INSERT fast path is Postgres-only")
def test_rows_written_meanwhile_in_a_new_range_fall_back_to_the_upsert(monkeypatch, caplog):
    ingest_records([candle(2, 102)])
    # As if another writer stored minute 2 between the probe and the INSERT.
    monkeypatch.setattr(services, "_nothing_stored_between", lambda *args: True)
    with caplog.at_level(logging.INFO, logger="feeds"):
        assert ingest_records([candle(i, 200 + i) for i in range(5)]) == 5
    assert "upserting instead" in caplog.text
    assert [v["close"] for _, v in tape()] == [200, 201, 202, 203, 204]
    assert FeedIngestionState.objects.get(**D.as_filter()).record_count == 5


def test_the_fast_check_and_the_exact_one_agree():
    def tick(second, price, **more):
        return NormalizedRecord(
            "binance", "BTC", "tick", "1s", T0 + timedelta(seconds=second), {"price": price, **more}
        )

    page = [
        tick(0, 1e12, other=1e15),  # at the bounds: kept
        tick(1, 1.0, other=math.inf),  # an infinite extra value: rejected
        tick(2, -math.inf, other=math.inf),
        tick(3, 2.0, volume=None),  # None extras are dropped
        tick(4, 3, other=True),  # a bool is not a number
        tick(5, 1e308),  # beyond MAX_PRICE
        tick(6, 1.0, volume=0.0),  # a zero volume is fine (the exact path)
        tick(7, 5.0, other=1e16),  # an extra value beyond the JSON bound
        candle(0, 100.0),
        NormalizedRecord(
            D.source, D.subject, D.kind, D.granularity, T0, {"open": 1.0, "high": 2.0, "low": 1.5, "close": 1.0}
        ),
    ]
    assert ingest_records(page) == 4
    assert FeedRecord.objects.filter(kind="tick").count() == 3
    assert FeedRecord.objects.get(ts_event=T0 + timedelta(seconds=3)).values == {"price": 2.0}
    assert FeedRecord.objects.get(kind="candle").values == candle(0, 100.0).values
