"""Issue 20 (API): malformed parameters and cursors are a 400 `{"detail", "code"}`, never a 500;
unmatched /reports paths are JSON 404s; the parsers of coordinator_site.boundary.params."""

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from coordinator_site.boundary import OUT_OF_RANGE, UNSTORABLE_TEXT, Rejected
from coordinator_site.boundary.params import (
    MALFORMED,
    decode_cursor,
    encode_cursor,
    parse_choice,
    parse_id_list,
    parse_utc_datetime,
    parse_whole_number,
)
from reports.services import api_key_create
from tests.factories import make_checkpoint
from tests.reports.helpers import EMISSION, build_world

# isdigit() is True for all of these; int() refuses "²" and takes "٣" (3): neither decides here.
NON_ASCII_DIGITS = ["\u00b2", "\u0663", "\uff15", "1\u00b2", "\u07c1"]


def raw_cursor(value, pk=1) -> str:
    """A cursor as the API encodes one, around any JSON value (json.dumps escapes NUL and surrogates)."""
    return base64.urlsafe_b64encode(json.dumps([value, pk]).encode()).decode().rstrip("=")


def assert_refused(response, param: str, code: str | None = None):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["detail"].startswith(param), body
    if code:
        assert body["code"] == code, body


# --- The parsers -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [*NON_ASCII_DIGITS, "", " 1", "1 ", "+1", "-1", "1_000", "1e3", "1.0", "0x10"])
def test_parse_whole_number_takes_ascii_digits_only(text):
    with pytest.raises(Rejected) as exc:
        parse_whole_number(text, field="limit", minimum=0, maximum=10**6)
    assert exc.value.code == MALFORMED
    assert exc.value.detail.startswith("limit")


def test_parse_whole_number_checks_the_range_without_overflow():
    assert parse_whole_number("0042", field="n", minimum=1, maximum=100) == 42
    for text in ["0", "101", "9" * 150]:
        with pytest.raises(Rejected) as exc:
            parse_whole_number(text, field="n", minimum=1, maximum=100)
        assert exc.value.code == OUT_OF_RANGE
    with pytest.raises(Rejected) as exc:
        parse_whole_number("9" * 5000, field="n", minimum=1, maximum=100)  # refused before int() runs
    assert exc.value.code == "TOO_LARGE"


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-02T00:00:00Z", datetime(2026, 11, 2, tzinfo=UTC)),
        ("2026-11-02t01:30:00.5z", datetime(2026, 11, 2, 1, 30, 0, 500000, tzinfo=UTC)),
        ("2026-11-02T20:00:00+20:00", datetime(2026, 11, 2, tzinfo=UTC)),  # beyond PostgreSQL's ±15:59
        ("2026-11-01T00:01:00-23:59", datetime(2026, 11, 2, tzinfo=UTC)),
        ("2026-11-02T00:00:00.123456789+00:00", datetime(2026, 11, 2, 0, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_utc_datetime_normalises_every_offset_to_utc(text, utc):
    value = parse_utc_datetime(text, field="start")
    assert value == utc
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("2026-11-02", MALFORMED),  # no time
        ("2026-11-02T00:00:00", MALFORMED),  # no offset
        ("2026-11-02 00:00:00Z", MALFORMED),
        ("yesterday", MALFORMED),
        ("\uff12\uff10\uff12\uff16-11-02T00:00:00Z", MALFORMED),  # full-width digits
        ("2026-02-30T00:00:00Z", MALFORMED),
        ("2026-11-02T24:00:00Z", MALFORMED),
        ("2026-11-02T00:00:00+24:00", OUT_OF_RANGE),
        ("1969-12-31T23:59:59Z", OUT_OF_RANGE),  # the API's years: 1970..9000
        ("9001-01-01T00:00:00Z", OUT_OF_RANGE),
        ("2026-11-02T00:00:00\x00Z", UNSTORABLE_TEXT),
    ],
)
def test_parse_utc_datetime_refuses_what_is_not_rfc_3339_in_range(text, code):
    with pytest.raises(Rejected) as exc:
        parse_utc_datetime(text, field="start")
    assert exc.value.code == code


def test_parse_utc_datetime_refuses_an_instant_before_year_1_in_utc():
    with pytest.raises(Rejected) as exc:
        parse_utc_datetime("0001-01-01T00:00:00+05:00", field="cursor", min_year=1, max_year=9999)
    assert exc.value.code == OUT_OF_RANGE
    with pytest.raises(Rejected):
        parse_utc_datetime("9999-12-31T23:00:00-05:00", field="cursor", min_year=1, max_year=9999)


def test_parse_choice_and_id_list():
    assert parse_choice("SCORED", field="status", choices=["SCORED", "FAILED"]) == "SCORED"
    with pytest.raises(Rejected, match="status must be one of SCORED, FAILED"):
        parse_choice("scored", field="status", choices=["SCORED", "FAILED"])
    assert parse_id_list(["a, b", "c", ""], field="projectIds") == ["a", "b", "c"]
    with pytest.raises(Rejected):
        parse_id_list([",".join(["x"] * 1001)], field="projectIds")


def test_a_cursor_round_trips_in_utc():
    moment = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, 7), field="cursor", is_datetime=True) == (moment, 7)
    assert decode_cursor(encode_cursor("alpha", 3), field="cursor", is_datetime=False) == ("alpha", 3)


@pytest.mark.parametrize(
    ("cursor", "is_datetime", "code"),
    [
        (raw_cursor("a\x00b"), False, UNSTORABLE_TEXT),
        (raw_cursor("\ud800"), False, UNSTORABLE_TEXT),
        (raw_cursor("2026-11-02T00:00:00\x00+00:00"), True, UNSTORABLE_TEXT),
        (raw_cursor("0001-01-01T00:00:00+05:00"), True, OUT_OF_RANGE),
        (raw_cursor("2026-11-02T00:00:00"), True, MALFORMED),
        (raw_cursor("2026-11-02T00:00:00Z", pk=2**63), True, MALFORMED),
        (raw_cursor("2026-11-02T00:00:00Z", pk=True), True, MALFORMED),
        (raw_cursor({"a": 1}), False, "NOT_JSON"),
        ("not base64 at all!", False, MALFORMED),
        (base64.urlsafe_b64encode(b"\xff\xfe").decode(), False, MALFORMED),
        ("", False, MALFORMED),
    ],
)
def test_decode_cursor_refuses_what_the_api_did_not_issue(cursor, is_datetime, code):
    with pytest.raises(Rejected) as exc:
        decode_cursor(cursor, field="cursor", is_datetime=is_datetime)
    assert exc.value.code == code


# --- Through the API ---------------------------------------------------------------------------


@pytest.fixture
def world(db):
    return build_world()


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/reports/merkle/proof", "snapshot_id"),  # was a 500 for "²" (isdigit() then int())
        ("/reports/predictions", "limit"),  # "٣" was taken as 3
        ("/reports/predictions", "config"),
        ("/reports/checkpoints/latest/prizes", "total_prize"),
        ("/reports/models/metrics", "limit"),
    ],
)
def test_non_ascii_digits_are_a_400(world, path, param, digits):
    assert_refused(APIClient().get(path, {param: digits}), param, MALFORMED)


@pytest.mark.parametrize(
    ("path", "cursor", "code"),
    [
        ("/reports/models", raw_cursor("a\x00b"), UNSTORABLE_TEXT),  # NUL reached PostgreSQL: 500
        ("/reports/models", raw_cursor("\udc80"), UNSTORABLE_TEXT),  # a lone surrogate: 500
        ("/reports/predictions", raw_cursor("0001-01-01T00:00:00+05:00"), OUT_OF_RANGE),  # OverflowError: 500
        ("/reports/predictions", raw_cursor("2026-11-02T00:00:00\x00Z"), UNSTORABLE_TEXT),
        ("/reports/snapshots", raw_cursor(["2026-11-02T00:00:00Z"]), MALFORMED),
        ("/reports/feeds/tail", "x" * 2000, "TOO_LARGE"),
        ("/reports/predictions", "", MALFORMED),
    ],
)
def test_a_malformed_cursor_is_a_400(world, path, cursor, code):
    assert_refused(APIClient().get(path, {"cursor": cursor}), "cursor", code)


def test_a_cursor_timestamp_with_any_offset_is_compared_in_utc(world):
    """A +20:00 offset is not a PostgreSQL literal (was a 500): the instant is normalised first."""
    api = APIClient()
    page = api.get("/reports/predictions", {"limit": 2})
    next_url = page["Link"].split(";")[0].strip("<>")
    utc_cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    moment, pk = decode_cursor(utc_cursor, field="cursor", is_datetime=True)
    shifted = raw_cursor(moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z", pk)
    plus_twenty = (moment + timedelta(hours=20)).replace(tzinfo=None).isoformat() + "+20:00"
    expected = api.get("/reports/predictions", {"limit": 2, "cursor": utc_cursor}).json()
    assert expected  # a second page exists
    for cursor in (shifted, raw_cursor(plus_twenty, pk)):
        response = api.get("/reports/predictions", {"limit": 2, "cursor": cursor})
        assert response.status_code == 200, response.content
        assert response.json() == expected


@pytest.mark.parametrize(
    ("path", "params", "param", "code"),
    [
        ("/reports/predictions", {"start": "0001-01-01T00:00:00+05:00"}, "start", OUT_OF_RANGE),  # was a 500
        ("/reports/snapshots", {"until": "9999-12-31T23:00:00-05:00"}, "until", OUT_OF_RANGE),
        ("/reports/models/global", {"end": "0001-01-01T00:00:00+05:00"}, "end", OUT_OF_RANGE),
        ("/reports/predictions", {"start": "2026-11-02"}, "start", MALFORMED),
        ("/reports/predictions", {"limit": ""}, "limit", MALFORMED),
        ("/reports/predictions", {"status": ""}, "status", MALFORMED),
        ("/reports/predictions", {"ordering": ""}, "ordering", MALFORMED),
        ("/reports/checkpoints", {"status": "pending"}, "status", MALFORMED),
        ("/reports/checkpoints/latest/prizes", {"total_prize": "1" + "0" * 30}, "total_prize", OUT_OF_RANGE),
        ("/reports/merkle/proof", {"snapshot_id": str(2**63)}, "snapshot_id", OUT_OF_RANGE),
        ("/reports/merkle/proof", {}, "snapshot_id", MALFORMED),
    ],
)
def test_bad_parameters_are_a_400_with_detail_and_code(world, path, params, param, code):
    assert_refused(APIClient().get(path, params), param, code)


def test_a_start_in_the_future_without_end_is_an_empty_range_not_a_400(world):
    response = APIClient().get("/reports/models/global", {"start": "2999-01-01T00:00:00Z"})
    assert response.status_code == 200
    assert response.json() == []


def test_offsets_beyond_postgres_range_filter_like_their_utc_instant(world):
    api = APIClient()
    utc = api.get("/reports/predictions", {"start": "2026-11-02T00:01:00Z"}).json()
    shifted = api.get("/reports/predictions", {"start": "2026-11-02T20:01:00+20:00"})
    assert shifted.status_code == 200
    assert shifted.json() == utc
    assert 0 < len(utc) < 6


def test_a_nul_byte_is_a_json_400_under_reports():
    response = APIClient().get("/reports/predictions?scope_key=a%00b")
    assert response.status_code == 400
    assert response.json() == {"detail": "NUL bytes are not allowed in requests.", "code": UNSTORABLE_TEXT}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/reports/checkpoints/abc"),
        ("get", "/reports/checkpoints/-1"),
        ("get", "/reports/checkpoints/99999999999999999999"),
        ("get", "/reports/checkpoints/abc/emission"),
        ("post", "/reports/checkpoints/abc/confirm"),
        ("patch", "/reports/checkpoints/1.5/status"),
        ("get", "/reports/nowhere"),
        ("get", "/reports/models/"),
        ("delete", "/reports"),
    ],
)
def test_every_unmatched_path_under_reports_is_a_json_404(db, method, path):
    response = getattr(APIClient(), method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.fixture
def admin(db):
    _, raw = api_key_create(name="ops", scope="admin")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def test_a_refused_body_has_a_detail_and_keeps_its_fields(admin):
    checkpoint = make_checkpoint(emission=EMISSION)
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith("tx_hash: ")
    assert body["tx_hash"]


def test_a_tx_hash_that_is_a_json_number_is_a_400(admin):
    checkpoint = make_checkpoint(emission=EMISSION)
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", {"tx_hash": 12}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("tx_hash")
