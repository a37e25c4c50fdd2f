"""Canonical snapshot documents and their hashes (DESIGN.md §9).

One encoding, used for `Snapshot.content_hash` and for the checkpoint Merkle leaves, so a proof
can be checked by anyone from the published document: JSON with sorted keys, no whitespace,
timestamps as integer microseconds since the epoch, floats in Python's shortest round-trip form,
no NaN or Infinity. leaf = sha256(0x00 || canonical JSON); node = sha256(0x01 || left || right).
"""

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def epoch_us(t: datetime) -> int:
    """A timezone-aware datetime as integer microseconds since the Unix epoch."""
    if t.tzinfo is None:
        raise ValueError("naive datetime in a canonical document")
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_us(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN/Infinity in a canonical document")
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def canonical_json(document: Any) -> bytes:
    """The canonical byte encoding of a JSON-like document."""
    return json.dumps(
        _canonical(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def leaf_hash(document: Any) -> str:
    """sha256(0x00 || canonical JSON), hex."""
    return hashlib.sha256(LEAF_PREFIX + canonical_json(document)).hexdigest()


def node_hash(left_hex: str, right_hex: str) -> str:
    """sha256(0x01 || left || right) over the raw 32-byte digests, hex."""
    return hashlib.sha256(NODE_PREFIX + bytes.fromhex(left_hex) + bytes.fromhex(right_hex)).hexdigest()


# Leaf document formats. 1 (before settled periods): carried the snapshot's row id, which
# differs between two runs over the same data. 2: natural keys only (model_id, period), and the
# summary's exact sums. A checkpoint records the format its leaves use (meta.leaf_format), so
# proofs issued under format 1 still verify.
LEAF_FORMAT = 2


def snapshot_document(snapshot, *, leaf_format: int = LEAF_FORMAT) -> dict[str, Any]:
    """What a snapshot commits to: identity (natural keys), period, counts and summary."""
    document = {
        "model_id": str(snapshot.model.model_id),
        "period_start": snapshot.period_start,
        "period_end": snapshot.period_end,
        "prediction_count": snapshot.prediction_count,
        "counts": snapshot.counts,
        "result_summary": snapshot.result_summary,
    }
    if leaf_format == 1:
        document["snapshot_id"] = snapshot.pk
    else:
        document["format"] = leaf_format
    return document
