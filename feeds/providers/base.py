"""What every provider shares: the protocol, the errors the worker reacts to, per-record checks, HTTP."""

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import requests
from django.conf import settings

from coordinator_site.boundary import (
    MAX_ABS_JSON_NUMBER,
    NOT_JSON,
    TOO_LARGE,
    Rejected,
    clean_json,
    clean_number,
    clean_text,
    escape_text,
)
from feeds.dims import FeedDims, NormalizedRecord

log = logging.getLogger("feeds.providers")

CANDLE_FIELDS = ("open", "high", "low", "close")
TICK_FIELDS = ("price",)
_CANDLE_REQUIRED, _TICK_REQUIRED, _FLOAT_ONLY = frozenset(CANDLE_FIELDS), frozenset(TICK_FIELDS), {float}


@runtime_checkable
class FeedProvider(Protocol):
    """A source of records. `fetch` pages history, `latest` is what polling asks for."""

    source: str

    def fetch(self, dims: FeedDims, start: datetime, end: datetime, limit: int) -> list[NormalizedRecord]:
        """Up to `limit` records with start <= ts_event < end, oldest first. Empty means none left in range."""
        ...

    def latest(self, dims: FeedDims) -> list[NormalizedRecord]:
        """The newest record(s) available now (closed candles only)."""
        ...


# What a provider's `stream()` yields once its connection is open (before any records of it).
CONNECTED = "connected"


@runtime_checkable
class StreamingProvider(Protocol):
    """A provider with a push connection (stream mode, docs/feeds.md "Stream mode")."""

    source: str  # feeds.providers.STREAM_KINDS says which kinds it streams

    def stream(self, streams: list[FeedDims], *, idle_seconds: float, stop: Any) -> Iterator[Any]:
        """One connection for `streams`: yields CONNECTED once it is open, then lists of checked records.

        Returns when the server closes the connection or `stop` (a threading.Event) is set; raises a
        ProviderError when it cannot connect, the server refuses, or nothing arrives for `idle_seconds`.
        """
        ...


class ProviderError(Exception):
    """The provider could not answer; the worker records it and backs off."""


class ProviderConfigError(ProviderError):
    """A setting is missing or wrong; retrying quickly cannot help, so the worker waits the longest."""


class ProviderUnavailable(ProviderError):
    """Timeout, connection error, 5xx or a malformed body: transient, retried with capped backoff."""


class ProviderRateLimited(ProviderError):
    """HTTP 429 (or Binance's 418): wait as long as the server says before asking again."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- per-record limits (DESIGN.md §12: one sanitising boundary per ingress) --------------------
#
# Every record, whatever path built it (a provider page, a CSV row, a caller of ingest_records),
# passes check_record before it can reach a batch statement. The checks are the boundary's
# (coordinator_site.boundary); the bounds below are the feed's own.

MAX_PRICE = 1e12  # a price (tick price, candle open/high/low/close): 0 < price <= 1e12 (no asset trades above)
MAX_VOLUME = MAX_ABS_JSON_NUMBER  # a candle's volume: 0 <= volume <= 1e15
MAX_NUMBER_TEXT = 64  # a number sent as text ("68512.34000000") is at most this long
MAX_VALUE_NAME = 64  # the name of an extra value (e.g. pyth's "conf")
MAX_META_CHARS = 4096  # a record's meta as compact JSON (providers put a few ids there, never documents)
MIN_TS_EVENT = datetime(1970, 1, 1, tzinfo=UTC)  # ts_event must lie in [MIN_TS_EVENT, MAX_TS_EVENT)
MAX_TS_EVENT = datetime(2200, 1, 1, tzinfo=UTC)
# The model's column widths: longer text would make PostgreSQL refuse the whole statement.
DIMS_MAX_CHARS = {"source": 32, "subject": 64, "kind": 16, "granularity": 8}
PRICE_FIELDS = frozenset(CANDLE_FIELDS + TICK_FIELDS)

# Feed-specific reason codes, next to the boundary's (UNSTORABLE_TEXT, NON_FINITE_NUMBER,
# OUT_OF_RANGE, NOT_JSON, TOO_LARGE, TOO_DEEP); docs/failure-isolation-feeds.md lists them all.
MISSING_FIELD = "MISSING_FIELD"  # a required value (price, open, ..., ts_event) is absent
NOT_A_NUMBER = "NOT_A_NUMBER"  # text where a number belongs that does not parse as one ("abc")
BAD_TIMESTAMP = "BAD_TIMESTAMP"  # ts_event unparseable, without a UTC offset, or outside the bounds
INCONSISTENT_CANDLE = "INCONSISTENT_CANDLE"  # not low <= open, close <= high
MALFORMED = "MALFORMED"  # the item has the wrong shape (not an object/array, unknown kind, parse error)
EXAMPLES_PER_CODE = 3  # rejection details kept per reason code in a summary (the counts are exact)


class RecordRejected(Rejected):
    """One record from a provider is unusable: `code` says why (MALFORMED unless given), `detail` where."""

    def __init__(self, detail: str, code: str = MALFORMED) -> None:
        super().__init__(code, detail)


@dataclass
class Rejections:
    """Records rejected so far, counted per reason code, with the first details of each code."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, code: str, detail: str) -> None:
        self.counts[code] += 1
        kept = self.examples.setdefault(code, [])
        if len(kept) < EXAMPLES_PER_CODE:
            kept.append(escape_text(detail, max_chars=300))

    def merge(self, other: "Rejections") -> None:
        for code, n in other.counts.items():
            self.counts[code] += n
            kept = self.examples.setdefault(code, [])
            kept.extend(other.examples.get(code, [])[: EXAMPLES_PER_CODE - len(kept)])

    def reasons(self) -> str:
        """`NOT_A_NUMBER x2 (values.open is not a number: 'x' | ...); TOO_LARGE x1 (...)`."""
        return "; ".join(
            f"{code} x{n} ({' | '.join(self.examples.get(code, []))})" for code, n in sorted(self.counts.items())
        )

    def summary(self) -> str:
        return f"rejected {self.total} record(s): {self.reasons()}"


_collector: ContextVar[Rejections | None] = ContextVar("feeds_rejections", default=None)


@contextmanager
def collect_rejections() -> Iterator[Rejections]:
    """Collect every record rejected inside the block (by parse_page or ingest_records), for the caller
    to record where the operator looks (FeedIngestionState.last_error, BackfillJob.error).

    Providers keep their `fetch`/`latest` signatures; the tally travels in a context variable.
    Nested blocks each see their own records, and the outer block gets them too.
    """
    outer = _collector.get()
    tally = Rejections()
    token = _collector.set(tally)
    try:
        yield tally
    finally:
        _collector.reset(token)
        if outer is not None:
            outer.merge(tally)


def report_rejections(page: Rejections, *, source: str, seen: int) -> None:
    """Log a page's rejections as ONE warning (never one per row) and add them to the open collection."""
    if not page.total:
        return
    log.warning("rejected %d of %d record(s) from %s: %s", page.total, seen, source, page.reasons())
    collector = _collector.get()
    if collector is not None:
        collector.merge(page)


def clean_value(name: str, value: Any) -> float:
    """One value of a record as a float within its bound, from a number or a numeric text, else Rejected.

    Prices (price, open, high, low, close): 0 < x <= MAX_PRICE. volume: 0 <= x <= MAX_VOLUME. Any
    other value (e.g. pyth's conf): |x| <= MAX_ABS_JSON_NUMBER. Always finite.
    """
    field_name = f"values.{name}"
    if value is None:
        raise Rejected(MISSING_FIELD, f"missing field {name!r}")
    if isinstance(value, str):
        text = clean_text(value, field=field_name, max_chars=MAX_NUMBER_TEXT)
        try:
            value = float(text)
        except ValueError:
            raise Rejected(NOT_A_NUMBER, f"{field_name} is not a number: {text!r}") from None
    if name in PRICE_FIELDS:
        return clean_number(value, field=field_name, max_abs=MAX_PRICE, minimum=0.0, exclusive_minimum=True)
    if name == "volume":
        return clean_number(value, field=field_name, max_abs=MAX_VOLUME, minimum=0.0)
    return clean_number(value, field=field_name, max_abs=MAX_ABS_JSON_NUMBER)


def check_values(kind: str, values: Any) -> dict[str, float]:
    """The record's values as bounded floats: a tick needs `price`, a candle open/high/low/close
    (volume and other values optional, None dropped); Rejected with its reason code otherwise."""
    if not isinstance(values, dict):
        raise Rejected(MALFORMED, f"values is {type(values).__name__}, not an object")
    names, required = (CANDLE_FIELDS, _CANDLE_REQUIRED) if kind == "candle" else (TICK_FIELDS, _TICK_REQUIRED)
    # Fast path for bulk ingest of already-numeric values (no copy, returns the same dict): exactly the
    # required names (and a candle's volume), every value a float, their sum finite (so none is NaN or
    # infinite), and within range -- for a candle, low > 0 and high <= MAX_PRICE bound all four prices
    # once the consistency check below holds. Anything else takes the exact path, which says why.
    clean = None
    floats = values.values()
    if kind == "candle":
        size = len(values)
        if (
            (size == 4 or (size == 5 and "volume" in values))
            and values.keys() >= required
            and {*map(type, floats)} == _FLOAT_ONLY
            and math.isfinite(sum(floats))
            and values["low"] > 0.0
            and values["high"] <= MAX_PRICE
            and 0.0 <= values.get("volume", 0.0) <= MAX_VOLUME
        ):
            clean = values
    elif len(values) == 1 and type(price := values.get("price")) is float and 0.0 < price <= MAX_PRICE:
        clean = values  # (NaN fails the comparison, infinity the bound)
    if clean is None:
        clean = {name: clean_value(name, values.get(name)) for name in names}
        for name, value in values.items():
            if name not in clean and value is not None:
                clean_text(name, field="values key", max_chars=MAX_VALUE_NAME)
                clean[name] = clean_value(name, value)
    if kind == "candle":
        low, high, open_, close = clean["low"], clean["high"], clean["open"], clean["close"]
        if not (low <= open_ <= high and low <= close <= high):
            raise Rejected(INCONSISTENT_CANDLE, f"inconsistent candle {clean}")
    return clean


@lru_cache(maxsize=256)
def _check_dims(source: Any, subject: Any, kind: Any, granularity: Any) -> None:
    """The four dimensions as storable text that fits its column (cached: a page has one stream)."""
    for name, value in zip(DIMS_MAX_CHARS, (source, subject, kind, granularity), strict=True):
        clean_text(value, field=name, max_chars=DIMS_MAX_CHARS[name])
    if kind not in ("tick", "candle"):
        raise Rejected(MALFORMED, f"unknown kind {kind!r}")


def check_ts_event(ts_event: Any) -> datetime:
    """An aware datetime within [MIN_TS_EVENT, MAX_TS_EVENT), else Rejected(BAD_TIMESTAMP)."""
    if ts_event.__class__ is not datetime or ts_event.tzinfo is not UTC:  # the common case costs two checks
        if not isinstance(ts_event, datetime) or ts_event.tzinfo is None or ts_event.utcoffset() is None:
            raise Rejected(
                BAD_TIMESTAMP, f"ts_event must be an aware datetime, got {escape_text(ts_event, max_chars=80)}"
            )
    try:
        inside = MIN_TS_EVENT <= ts_event < MAX_TS_EVENT
    except OverflowError:  # an offset that pushes it past datetime's range
        inside = False
    if not inside:
        raise Rejected(BAD_TIMESTAMP, f"ts_event {ts_event.isoformat()} is outside [1970, 2200)")
    return ts_event


_EMPTY_META: dict = {}
_META_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_CLEAN_METAS: dict[tuple, None] = {}  # metas already found clean (a page usually repeats one)


def check_meta(meta: Any) -> dict:
    """`meta` as a storable JSON object (the boundary's clean_json; None means {}) of at most
    MAX_META_CHARS, else Rejected. A meta found clean is remembered, so a page repeating one pays once."""
    if meta is None:
        return _EMPTY_META
    if not isinstance(meta, dict):
        raise Rejected(MALFORMED, f"meta is {type(meta).__name__}, not an object")
    try:
        key = tuple(meta.items())
        if key in _CLEAN_METAS:
            return meta
    except TypeError:  # unhashable values (nested lists/dicts): checked every time
        key = None
    clean_json(meta, field="meta")
    size = len(_META_JSON(meta))
    if size > MAX_META_CHARS:
        raise Rejected(TOO_LARGE, f"meta is {size} characters of JSON (at most {MAX_META_CHARS})")
    if key is not None:
        if len(_CLEAN_METAS) > 4096:
            _CLEAN_METAS.clear()
        _CLEAN_METAS[key] = None
    return meta


def check_record(record: Any) -> NormalizedRecord:
    """The record with clean values, or Rejected (with a reason code) saying why it cannot be stored."""
    if not isinstance(record, NormalizedRecord):
        raise Rejected(MALFORMED, f"not a NormalizedRecord: {escape_text(record, max_chars=200)}")
    try:
        _check_dims(record.source, record.subject, record.kind, record.granularity)
    except TypeError:  # an unhashable dimension: certainly not text
        raise Rejected(NOT_JSON, f"a dimension of {escape_text(record.dims, max_chars=200)} is not text") from None
    check_ts_event(record.ts_event)
    values = check_values(record.kind, record.values)
    if record.meta:
        check_meta(record.meta)
    if values is record.values:
        return record
    return NormalizedRecord(**{**record.__dict__, "values": values})


def parse_page(items: Iterable[Any], parse_one: Callable[[Any], NormalizedRecord | None], *, source: str) -> list:
    """Parse a page record by record: bad ones are rejected with their reason code (one aggregated
    warning per page, and counted in the open `collect_rejections`), good ones kept. `parse_one`
    returns None for an item that is not for this stream (skipped, not rejected)."""
    good = []
    rejected = Rejections()
    seen = 0
    for item in items:
        try:
            record = parse_one(item)
            if record is None:
                continue
            good.append(check_record(record))
        except Rejected as exc:
            rejected.add(exc.code, exc.detail)
        except Exception as exc:  # whatever one item raises, the rest of the page goes on
            rejected.add(MALFORMED, f"{type(exc).__name__}: {exc}; raw={escape_text(item, max_chars=200)}")
        seen += 1
    report_rejections(rejected, source=source, seen=seen)
    return good


def from_epoch(seconds: float) -> datetime:
    """The aware UTC time of Unix `seconds`; Rejected(BAD_TIMESTAMP) for a time outside the bounds."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise Rejected(BAD_TIMESTAMP, f"time is {type(seconds).__name__}, not a number")
    try:
        return check_ts_event(datetime.fromtimestamp(seconds, tz=UTC))
    except (OverflowError, OSError, ValueError):
        raise Rejected(BAD_TIMESTAMP, f"time {seconds!r} is outside [1970, 2200)") from None


def epoch_seconds(t: datetime) -> int:
    return int(t.timestamp())


def retry_after_seconds(headers: Any, default: float = 60.0) -> float:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates fall back to `default`)."""
    raw = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        return default


_timeout_cap: ContextVar[float | None] = ContextVar("feeds_http_timeout_cap", default=None)


@contextmanager
def http_timeout(seconds: float) -> Iterator[None]:
    """Requests made inside the block (in this thread) wait at most `seconds` per request, not
    FEED_HTTP_TIMEOUT_SECONDS: a time-boxed fetch (the resolver's gap fetch) gives up no later than its box."""
    token = _timeout_cap.set(seconds)
    try:
        yield
    finally:
        _timeout_cap.reset(token)


def request_timeout() -> float:
    """Seconds one HTTP request may wait: FEED_HTTP_TIMEOUT_SECONDS, or less inside `http_timeout`."""
    cap = _timeout_cap.get()
    return settings.FEED_HTTP_TIMEOUT_SECONDS if cap is None else min(cap, settings.FEED_HTTP_TIMEOUT_SECONDS)


def get_json(url: str, *, params: Any = None, headers: dict | None = None, what: str) -> Any:
    """GET a JSON document, mapping failures onto the provider errors the worker understands."""
    timeout = request_timeout()
    try:
        response = requests.get(url, params=params, headers=headers, timeout=timeout)
    except requests.Timeout as exc:
        raise ProviderUnavailable(f"{what}: timed out after {timeout:g}s ({exc})") from exc
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    check_status(response, what=what)
    try:
        return json.loads(response.text)
    except ValueError as exc:
        raise ProviderUnavailable(f"{what}: malformed JSON ({exc}): {response.text[:200]!r}") from exc


def check_status(response: requests.Response, *, what: str) -> None:
    """Map an HTTP error status onto the provider errors the worker understands (2xx/3xx pass)."""
    if response.status_code == 429:
        wait = retry_after_seconds(response.headers)
        raise ProviderRateLimited(f"{what}: HTTP 429, retry after {wait:g}s", retry_after=wait)
    if response.status_code >= 500:
        raise ProviderUnavailable(f"{what}: HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code in (401, 403):
        raise ProviderConfigError(f"{what}: HTTP {response.status_code} (key rejected): {response.text[:200]}")
    if response.status_code >= 400:
        raise ProviderError(f"{what}: HTTP {response.status_code}: {response.text[:200]}")


MAX_SSE_LINE = 1 << 20  # one server-sent event line; a longer one is no price update


def sse_events(read_chunk: Callable[[], bytes]) -> Iterator[str]:
    """The `data` of each server-sent event read from `read_chunk()` (b"" = end of stream).

    Per the SSE format: lines end in LF or CRLF, `data:` lines of one event are joined by LF, a blank
    line ends the event, comment lines (`:`) and other fields (`event`, `id`, `retry`) are ignored.
    """
    buffer = b""
    data: list[str] = []
    while True:
        chunk = read_chunk()
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > MAX_SSE_LINE:
            raise ProviderUnavailable(f"server-sent event line longer than {MAX_SSE_LINE} bytes")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value.removeprefix(b" ").decode("utf-8", "replace"))
