"""Strict parsers for API parameters (query strings, path segments, pagination cursors).

The API's ingress of the sanitising boundary (DESIGN.md §12): every parameter is parsed here or
not at all, and a malformed one raises `Rejected` (the API answers 400 `{"detail", "code"}`).
Two classes of input used to get through to a 500:

- digits that are not ASCII: `str.isdigit()` is true for ``"²"`` and ``"٣"``, and `int()`
  rejects the first and accepts the second; only ``[0-9]`` is a digit here;
- timestamps whose offset puts them outside what the database takes (``+23:00`` is ISO 8601
  but not a PostgreSQL literal; ``0001-01-01T00:00+01:00`` is year 0 in UTC): every timestamp
  is normalised to UTC here, and its range checked, before it can reach SQL.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from coordinator_site.boundary import NOT_JSON, OUT_OF_RANGE, Rejected, clean_text

MALFORMED = "MALFORMED"  # not in the documented syntax of the parameter

MAX_DB_ID = 2**63 - 1  # a bigint primary key
MAX_PARAM_CHARS = 200  # a number or a timestamp is never longer: refuse before any regex runs
MAX_CURSOR_CHARS = 1000
MAX_ID_LIST = 1000  # `projectIds=a,b,…`

_WHOLE_NUMBER = re.compile(r"[0-9]+", re.ASCII)
# RFC 3339 `date-time` (what OpenAPI's `format: date-time` means): YYYY-MM-DDTHH:MM:SS, an
# optional fraction, and a required `Z` or ±HH:MM offset. ASCII digits only.
_DATETIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]+))?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
# The same grammar as a JSON-Schema pattern for the OpenAPI document, with the year range of
# the API's time bounds (1970..9000) spelled out.
API_MIN_YEAR, API_MAX_YEAR = 1970, 9000
DATETIME_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9000)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _bounded_text(text: Any, *, field: str, max_chars: int) -> str:
    """`text` as storable text of at most `max_chars` characters (else Rejected)."""
    return clean_text(text, field=field, max_chars=max_chars)


def parse_whole_number(text: Any, *, field: str, minimum: int, maximum: int) -> int:
    """`text` (ASCII digits only, no sign, no spaces, no exponent; not empty) as an int in [minimum, maximum].

    `str.isdigit()` and `int()` disagree on non-ASCII digits ("²", "٣"), so neither is used to decide.
    """
    text = _bounded_text(text, field=field, max_chars=MAX_PARAM_CHARS)
    if not _WHOLE_NUMBER.fullmatch(text):
        raise Rejected(MALFORMED, f"{field} must be a whole number from {minimum} to {maximum}, got {text!r}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise Rejected(OUT_OF_RANGE, f"{field} must be from {minimum} to {maximum}, got {value}")
    return value


def parse_utc_datetime(
    text: Any, *, field: str, min_year: int = API_MIN_YEAR, max_year: int = API_MAX_YEAR
) -> datetime:
    """`text` (RFC 3339: `2026-11-02T00:00:00Z`, `…T01:00:00.5+01:00`; the offset is required, up
    to ±23:59) as an aware UTC datetime. The written year must be in [min_year, max_year] and the
    instant must exist in UTC (year 1..9999, what Python, PostgreSQL and SQLite all hold)."""
    text = _bounded_text(text, field=field, max_chars=MAX_PARAM_CHARS)
    match = _DATETIME.fullmatch(text)
    if not match:
        raise Rejected(
            MALFORMED,
            f"{field} must be an RFC 3339 date-time with an offset, such as 2026-11-02T00:00:00Z; got {text!r}",
        )
    parts = match.groupdict()
    year = int(parts["date"][:4])
    if not min_year <= year <= max_year:
        raise Rejected(OUT_OF_RANGE, f"{field} must be in the years {min_year} to {max_year}, got {text!r}")
    tzinfo = _offset(parts["offset"], field=field, text=text)
    try:
        value = datetime(
            year,
            int(parts["date"][5:7]),
            int(parts["date"][8:10]),
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"]),
            int((parts["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=tzinfo,
        )
    except ValueError:  # month 13, February 30, hour 24, ...
        raise Rejected(MALFORMED, f"{field} is not a valid date-time: {text!r}") from None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is year 0 in UTC
        raise Rejected(OUT_OF_RANGE, f"{field} is outside the years 1 to 9999 in UTC: {text!r}") from None


def _offset(offset: str, *, field: str, text: str) -> timezone:
    """The tzinfo of `Z` or `±HH:MM`; at most ±23:59."""
    if offset in ("Z", "z"):
        return UTC
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        raise Rejected(OUT_OF_RANGE, f"{field} has an offset beyond ±23:59: {text!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if offset[0] == "-" else delta)


def parse_choice(text: Any, *, field: str, choices: Iterable[str]) -> str:
    """`text` if it is exactly one of `choices` (case-sensitive), else Rejected listing them."""
    text = _bounded_text(text, field=field, max_chars=MAX_PARAM_CHARS)
    choices = list(choices)
    if text not in choices:
        raise Rejected(MALFORMED, f"{field} must be one of {', '.join(choices)}; got {text!r}")
    return text


def parse_id_list(values: list[str], *, field: str, maximum: int = MAX_ID_LIST) -> list[str]:
    """Ids given comma-joined (`a,b`), repeated (`x=a&x=b`) or both; blanks dropped; at most `maximum`."""
    ids = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if len(ids) > maximum:
        raise Rejected(OUT_OF_RANGE, f"{field}: at most {maximum} ids, got {len(ids)}")
    return [clean_text(value, field=field) for value in ids]


# --- Keyset cursors --------------------------------------------------------------------------


def encode_cursor(value: Any, pk: int) -> str:
    """The opaque cursor after the row (`value` of the ordering field, primary key `pk`)."""
    text = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(json.dumps([text, pk]).encode()).decode().rstrip("=")


def decode_cursor(cursor: Any, *, field: str, is_datetime: bool) -> tuple[Any, int]:
    """(ordering value, primary key) from a cursor made by `encode_cursor`; Rejected otherwise.

    A datetime value is normalised to UTC and must exist in UTC; a text value must be storable
    (a cursor is base64 of JSON, so it can carry a NUL or a lone surrogate that the query string
    itself could not); the key is a bigint.
    """
    cursor = _bounded_text(cursor, field=field, max_chars=MAX_CURSOR_CHARS)
    invalid = f"{field} is not a cursor this API issued: follow the Link header of a previous page"
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        decoded = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error):
        raise Rejected(MALFORMED, invalid) from None
    if not (isinstance(decoded, list) and len(decoded) == 2):
        raise Rejected(MALFORMED, invalid)
    value, pk = decoded
    if isinstance(pk, bool) or not isinstance(pk, int) or not 0 <= pk <= MAX_DB_ID:
        raise Rejected(MALFORMED, invalid)
    if is_datetime:
        if not isinstance(value, str):
            raise Rejected(MALFORMED, invalid)
        return parse_utc_datetime(value, field=field, min_year=1, max_year=9999), pk
    if isinstance(value, str):
        return clean_text(value, field=field, max_chars=MAX_CURSOR_CHARS), pk
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_DB_ID):
        return value, pk
    raise Rejected(NOT_JSON if not isinstance(value, int) else OUT_OF_RANGE, invalid)


__all__ = [
    "DATETIME_PATTERN",
    "MALFORMED",
    "MAX_DB_ID",
    "decode_cursor",
    "encode_cursor",
    "parse_choice",
    "parse_id_list",
    "parse_utc_datetime",
    "parse_whole_number",
]
