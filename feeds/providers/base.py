"""What every provider shares: the protocol, the errors the worker reacts to, per-record checks, HTTP."""

import json
import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import requests
from django.conf import settings

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


class RecordRejected(ValueError):
    """One record from a provider is unusable; the reason is logged and the rest of the page is kept."""


def finite_number(value: Any, name: str) -> float:
    """A finite float from a number or numeric string; RecordRejected for anything else (None, 'abc', NaN)."""
    if value is None:
        raise RecordRejected(f"missing field {name!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordRejected(f"field {name!r} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise RecordRejected(f"field {name!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise RecordRejected(f"field {name!r} is not finite: {value!r}")
    return number


def check_values(kind: str, values: Any) -> dict[str, float]:
    """The record's values as finite floats: a tick needs `price`, a candle open/high/low/close (volume optional)."""
    if not isinstance(values, dict):
        raise RecordRejected(f"values is not an object: {values!r}")
    names, required = (CANDLE_FIELDS, _CANDLE_REQUIRED) if kind == "candle" else (TICK_FIELDS, _TICK_REQUIRED)
    # Fast path for bulk ingest of already-numeric values (no copy, returns the same dict): every
    # required name present, every value a float, and their sum finite -- so each one is (a NaN or an
    # infinity makes the sum non-finite; a sum that merely overflows takes the slow path, which is exact).
    floats = values.values()
    if values.keys() >= required and {*map(type, floats)} == _FLOAT_ONLY and math.isfinite(sum(floats)):
        clean = values
    else:
        clean = {name: finite_number(values.get(name), name) for name in names}
        for name, value in values.items():
            if name not in clean and value is not None:
                clean[name] = finite_number(value, name)
    if kind == "candle":
        low, high, open_, close = clean["low"], clean["high"], clean["open"], clean["close"]
        if not (low <= open_ <= high and low <= close <= high):
            raise RecordRejected(f"inconsistent candle {clean}")
    return clean


def check_record(record: Any) -> NormalizedRecord:
    """The record with clean values, or RecordRejected saying why it cannot be stored."""
    if not isinstance(record, NormalizedRecord):
        raise RecordRejected(f"not a NormalizedRecord: {record!r}")
    if not isinstance(record.ts_event, datetime) or record.ts_event.tzinfo is None:
        raise RecordRejected(f"ts_event must be an aware datetime, got {record.ts_event!r}")
    if record.kind not in ("tick", "candle"):
        raise RecordRejected(f"unknown kind {record.kind!r}")
    values = check_values(record.kind, record.values)
    if values is record.values:
        return record
    return NormalizedRecord(**{**record.__dict__, "values": values})


def parse_page(items: Iterable[Any], parse_one: Callable[[Any], NormalizedRecord], *, source: str) -> list:
    """Parse a page record by record: bad ones are logged with their reason and skipped, good ones kept."""
    good = []
    for item in items:
        try:
            good.append(check_record(parse_one(item)))
        except (RecordRejected, AttributeError, KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
            reason = exc.args[0] if isinstance(exc, RecordRejected) else f"{type(exc).__name__}: {exc}"
            log.warning("rejected record from %s: %s; raw=%.200r", source, reason, item)
    return good


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def epoch_seconds(t: datetime) -> int:
    return int(t.timestamp())


def retry_after_seconds(headers: Any, default: float = 60.0) -> float:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates fall back to `default`)."""
    raw = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        return default


def get_json(url: str, *, params: Any = None, headers: dict | None = None, what: str) -> Any:
    """GET a JSON document, mapping failures onto the provider errors the worker understands."""
    try:
        response = requests.get(url, params=params, headers=headers, timeout=settings.FEED_HTTP_TIMEOUT_SECONDS)
    except requests.Timeout as exc:
        raise ProviderUnavailable(f"{what}: timed out after {settings.FEED_HTTP_TIMEOUT_SECONDS}s ({exc})") from exc
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 429:
        wait = retry_after_seconds(response.headers)
        raise ProviderRateLimited(f"{what}: HTTP 429, retry after {wait:g}s", retry_after=wait)
    if response.status_code >= 500:
        raise ProviderUnavailable(f"{what}: HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code in (401, 403):
        raise ProviderConfigError(f"{what}: HTTP {response.status_code} (key rejected): {response.text[:200]}")
    if response.status_code >= 400:
        raise ProviderError(f"{what}: HTTP {response.status_code}: {response.text[:200]}")
    try:
        return json.loads(response.text)
    except ValueError as exc:
        raise ProviderUnavailable(f"{what}: malformed JSON ({exc}): {response.text[:200]!r}") from exc
