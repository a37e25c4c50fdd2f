"""What the report API's OpenAPI document cannot say, told to schemathesis (also usable from the
CLI: `SCHEMATHESIS_HOOKS=tests.reports.schemathesis_hooks st run …`).

- `format: keyset-cursor`: a cursor is opaque, and only one the API issued is valid. Valid
  cursors are drawn by encoding a (timestamp, id) like the API does; garbage cursors are the
  negative cases (and tests/reports/test_params.py).
- A time range whose end is before its start is refused (400). OpenAPI 3.0 cannot relate two
  parameters, so generated queries with such a pair are not sent as "valid" data.
- A tournament round's samples must have distinct sample_ids, and their features (any JSON
  object) must pass the storage boundary (finite numbers within ±1e15, no NUL in text or keys).
  OpenAPI 3.0 can say neither (uniqueness by a key; bounds and key patterns at any depth), so
  such bodies are not sent as "valid" data either (tests/tournament covers their refusal).
"""

from datetime import UTC, datetime

import schemathesis
from hypothesis import strategies as st

from coordinator_site.boundary import Rejected
from coordinator_site.boundary.params import MAX_DB_ID, encode_cursor, parse_utc_datetime

RANGE_PAIRS = (("start", "end"), ("since", "until"))

schemathesis.openapi.format(
    "keyset-cursor",
    st.builds(
        encode_cursor,
        st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(8999, 1, 1), timezones=st.just(UTC)),
        st.integers(min_value=0, max_value=MAX_DB_ID),
    ),
)


def _instant(value):
    try:
        return parse_utc_datetime(value, field="bound") if isinstance(value, str) else None
    except Rejected:
        return None


@schemathesis.hook
def filter_query(ctx, query):
    for low_name, high_name in RANGE_PAIRS:
        low, high = _instant((query or {}).get(low_name)), _instant((query or {}).get(high_name))
        if low is not None and high is not None and low > high:
            return False
    return True


def _round_samples_storable(body) -> bool:
    from coordinator_site.boundary import clean_json

    samples = body.get("samples") if isinstance(body, dict) else None
    if not isinstance(samples, list):
        return True  # not this rule's concern (the schema decides)
    ids = [s.get("sample_id") for s in samples if isinstance(s, dict)]
    if len(ids) != len(set(map(repr, ids))):
        return False
    for sample in samples:
        if isinstance(sample, dict) and isinstance(sample.get("features"), dict):
            try:
                clean_json(sample["features"], field="features")
            except ValueError:
                return False
    if isinstance(body.get("meta"), dict):
        try:
            clean_json(body["meta"], field="meta")
        except ValueError:
            return False
    return True


@schemathesis.hook
def filter_body(ctx, body):
    operation = getattr(ctx, "operation", None)
    if operation is not None and operation.method.upper() == "POST" and operation.path == "/reports/tournament/rounds":
        return _round_samples_storable(body)
    return True
