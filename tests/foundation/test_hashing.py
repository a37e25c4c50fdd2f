import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scoring.hashing import canonical_json, epoch_us, leaf_hash, node_hash


def test_canonical_json_is_sorted_compact_and_encodes_times_as_epoch_microseconds():
    t = datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)
    assert canonical_json({"b": 1.5, "a": t}) == b'{"a":1767225600000005,"b":1.5}'


def test_the_same_instant_in_another_offset_encodes_identically():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert epoch_us(t) == epoch_us(t.astimezone(timezone(timedelta(hours=5))))


def test_nan_and_naive_times_are_refused():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(ValueError):
        canonical_json({"t": datetime(2026, 1, 1)})


def test_leaf_and_node_hashes_use_domain_separation_over_raw_bytes():
    leaf = leaf_hash({"a": 1})
    assert leaf == hashlib.sha256(b'\x00{"a":1}').hexdigest()
    expected = hashlib.sha256(b"\x01" + bytes.fromhex(leaf) + bytes.fromhex(leaf)).hexdigest()
    assert node_hash(leaf, leaf) == expected
