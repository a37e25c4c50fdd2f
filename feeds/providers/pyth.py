"""Pyth: Hermes REST for the latest price, a TradingView-UDF `/history` endpoint for backfill.

Hermes requires an API key since Pyth's 2026 upgrade (`Authorization: Bearer <PYTH_API_KEY>`); the
old benchmarks TradingView shim is retired, so history comes from `PYTH_HISTORY_URL` (any UDF server
for Pyth symbols, `symbol=Crypto.BTC/USD`), authenticated with `PYTH_HISTORY_TOKEN` when set.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
import urllib3
from django.conf import settings
from django.utils import timezone

from coordinator_site.boundary import OUT_OF_RANGE, clean_text, escape_text
from feeds.dims import FeedDims, NormalizedRecord, granularity_seconds
from feeds.providers.base import (
    BAD_TIMESTAMP,
    CONNECTED,
    MALFORMED,
    MAX_NUMBER_TEXT,
    NOT_A_NUMBER,
    ProviderConfigError,
    ProviderUnavailable,
    RecordRejected,
    Rejections,
    check_status,
    epoch_seconds,
    from_epoch,
    get_json,
    parse_page,
    report_rejections,
    sse_events,
)

# Pyth price feed ids (mainnet/stable), checked against Pyth's published feed-id list and
# independent integrations. Others: set PYTH_FEED_IDS=SUBJECT=hexid,...
FEED_IDS = {
    "BTC": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
    "SOL": "ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d",
}

# TradingView resolutions (seconds resolutions carry an `S` suffix, minutes are bare numbers).
UDF_RESOLUTIONS = {"1s": "1S", "1m": "1", "5m": "5", "15m": "15", "1h": "60", "4h": "240", "1d": "1D"}
MAX_EMPTY_HOPS = 5  # `no_data` + nextTime jumps followed per fetch before giving up
MAX_ABS_EXPO = 64  # Pyth's exponents are around -8; one beyond this is no price


def feed_id(subject: str) -> str:
    """The Hermes feed id of a subject (PYTH_FEED_IDS overrides the built-in map)."""
    overrides = {k.upper(): v for k, v in settings.PYTH_FEED_IDS.items()}
    found = overrides.get(subject.upper()) or FEED_IDS.get(subject.upper())
    if not found:
        raise ProviderConfigError(f"no Pyth feed id for subject {subject!r}: set PYTH_FEED_IDS={subject}=<hex id>")
    return found.lower().removeprefix("0x")


def scaled(price, expo) -> float:
    """price x 10^expo, exact in Decimal (Pyth sends the mantissa as a string); Rejected if either is unusable.

    The result is bounded by check_record like any value (a price must be > 0 and <= MAX_PRICE)."""
    if isinstance(expo, bool) or not isinstance(expo, int):
        raise RecordRejected(f"expo is not an integer: {escape_text(expo, max_chars=80)}")
    if abs(expo) > MAX_ABS_EXPO:
        raise RecordRejected(f"expo {expo} is beyond ±{MAX_ABS_EXPO}", OUT_OF_RANGE)
    if isinstance(price, str):
        clean_text(price, field="price", max_chars=MAX_NUMBER_TEXT)
    elif isinstance(price, bool) or not isinstance(price, int | float):
        raise RecordRejected(f"price is {type(price).__name__}, not a number", NOT_A_NUMBER)
    try:
        return float(Decimal(price).scaleb(expo))
    except (InvalidOperation, ValueError):
        raise RecordRejected(f"price is not a number: {escape_text(repr(price), max_chars=80)}", NOT_A_NUMBER) from None
    except ArithmeticError:  # decimal.Overflow: an exponent far beyond any price
        raise RecordRejected(f"price {price!r} x 10^{expo} is out of range", OUT_OF_RANGE) from None


def require_api_key() -> None:
    if not settings.PYTH_API_KEY:
        raise ProviderConfigError(
            "PYTH_API_KEY is not set: Hermes requires an API key since Pyth's 2026 upgrade "
            "(set PYTH_API_KEY, or use FEED_SOURCE=synthetic offline)"
        )


class PythProvider:
    source = "pyth"

    # --- latest: Hermes ------------------------------------------------------------------
    def latest(self, dims: FeedDims) -> list[NormalizedRecord]:
        if dims.kind == "candle":
            # Hermes serves prices, not bars: the newest closed bar comes from the history endpoint.
            bar = timedelta(seconds=granularity_seconds(dims.granularity))
            now = timezone.now()
            aligned = datetime.fromtimestamp(
                epoch_seconds(now) // int(bar.total_seconds()) * int(bar.total_seconds()), tz=now.tzinfo
            )
            return self.fetch(dims, aligned - 3 * bar, now, 3)[-1:]
        require_api_key()
        wanted = feed_id(dims.subject)
        body = get_json(
            f"{settings.PYTH_HERMES_URL.rstrip('/')}/v2/updates/price/latest",
            params={"ids[]": wanted, "parsed": "true"},
            headers={"Authorization": f"Bearer {settings.PYTH_API_KEY}", "Accept": "application/json"},
            what="pyth hermes latest",
        )
        if not isinstance(body, dict) or not isinstance(body.get("parsed", []), list):
            raise ProviderUnavailable(f"pyth hermes latest: unexpected body {str(body)[:200]!r}")
        return parse_page(
            body.get("parsed") or [], lambda item: self._parse_hermes(dims, item, wanted), source=self.source
        )

    def _parse_hermes(self, dims: FeedDims, item: dict, wanted: str) -> NormalizedRecord:
        if not isinstance(item, dict):
            raise RecordRejected(f"price update is not an object: {item!r}")
        if str(item.get("id", wanted)).lower().removeprefix("0x") != wanted:
            raise RecordRejected(f"feed id {item.get('id')!r} was not requested")
        return self._hermes_record(dims, item)

    def _parse_streamed(self, wanted: dict[str, FeedDims], item: Any) -> NormalizedRecord:
        if not isinstance(item, dict):
            raise RecordRejected(f"price update is not an object: {item!r}")
        dims = wanted.get(str(item.get("id")).lower().removeprefix("0x"))
        if dims is None:
            raise RecordRejected(f"feed id {item.get('id')!r} was not requested")
        return self._hermes_record(dims, item)

    def _hermes_record(self, dims: FeedDims, item: dict) -> NormalizedRecord:
        price = item["price"]
        publish_time = price.get("publish_time")
        if isinstance(publish_time, bool) or not isinstance(publish_time, int):
            raise RecordRejected(f"publish_time is not an integer: {publish_time!r}", BAD_TIMESTAMP)
        return NormalizedRecord(
            source=self.source,
            subject=dims.subject,
            kind="tick",
            granularity=dims.granularity,
            ts_event=from_epoch(publish_time),
            values={
                "price": scaled(price.get("price"), price.get("expo")),
                "conf": scaled(price.get("conf"), price.get("expo")),
            },
            meta={"feed_id": item.get("id"), "slot": (item.get("metadata") or {}).get("slot")},
        )

    # --- stream: Hermes server-sent events -------------------------------------------------------
    def stream(self, streams: list[FeedDims], *, idle_seconds: float, stop: Any) -> Iterator[Any]:
        """`GET /v2/updates/price/stream?ids[]=…&parsed=true`: one connection for every tick stream.

        Each event's `data` is a JSON document shaped like the `latest` response (`parsed` list);
        its updates are checked one by one (a bad one is rejected, the rest kept). The socket read
        timeout is the idle timeout: a connection that stays open but sends nothing is given up.
        """
        require_api_key()
        wanted = {feed_id(d.subject): d for d in streams if d.kind == "tick"}
        params = [("ids[]", fid) for fid in wanted] + [("parsed", "true")]
        try:
            response = requests.get(
                f"{settings.PYTH_HERMES_URL.rstrip('/')}/v2/updates/price/stream",
                params=params,
                headers={"Authorization": f"Bearer {settings.PYTH_API_KEY}", "Accept": "text/event-stream"},
                stream=True,
                timeout=(settings.FEED_HTTP_TIMEOUT_SECONDS, idle_seconds),
            )
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"pyth hermes stream: {type(exc).__name__}: {exc}") from exc
        with response:
            check_status(response, what="pyth hermes stream")
            yield CONNECTED

            def read_chunk() -> bytes:
                if stop.is_set():
                    return b""
                try:
                    return response.raw.read1(65536, decode_content=True)  # gzip from a proxy or CDN, too
                except urllib3.exceptions.ReadTimeoutError as exc:
                    raise ProviderUnavailable(f"pyth hermes stream: idle for {idle_seconds:g}s") from exc
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise ProviderUnavailable(f"pyth hermes stream: {type(exc).__name__}: {exc}") from exc

            for data in sse_events(read_chunk):
                yield self._streamed_event(wanted, data)

    def _streamed_event(self, wanted: dict[str, FeedDims], data: str) -> list[NormalizedRecord]:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("parsed", []), list):
            bad = Rejections()
            bad.add(MALFORMED, f"event is not a price update document: {escape_text(data, max_chars=200)}")
            report_rejections(bad, source=self.source, seen=1)
            return []
        return parse_page(body.get("parsed") or [], lambda item: self._parse_streamed(wanted, item), source=self.source)

    # --- history: TradingView UDF ------------------------------------------------------------
    def fetch(self, dims: FeedDims, start: datetime, end: datetime, limit: int) -> list[NormalizedRecord]:
        if not settings.PYTH_HISTORY_URL:
            raise ProviderConfigError(
                "PYTH_HISTORY_URL is not set: Pyth history needs a TradingView-UDF /history endpoint "
                "(the old benchmarks shim is retired)"
            )
        seconds = granularity_seconds(dims.granularity)
        resolution = UDF_RESOLUTIONS[dims.granularity]
        # Ticks from history are bar closes stamped at the bar's end (the price in force then, no look-ahead).
        shift = seconds if dims.kind == "tick" else 0
        lo = epoch_seconds(start) - shift
        hi = epoch_seconds(end) - shift
        headers = {"Accept": "application/json"}
        if settings.PYTH_HISTORY_TOKEN:
            headers["Authorization"] = f"Bearer {settings.PYTH_HISTORY_TOKEN}"
        for _hop in range(MAX_EMPTY_HOPS):
            if lo >= hi:
                return []
            window_end = min(hi, lo + limit * seconds)
            body = get_json(
                f"{settings.PYTH_HISTORY_URL.rstrip('/')}/history",
                params={
                    "symbol": f"Crypto.{dims.subject.upper()}/USD",
                    "resolution": resolution,
                    "from": lo,
                    "to": window_end - 1,
                },
                headers=headers,
                what="pyth history",
            )
            if not isinstance(body, dict):
                raise ProviderUnavailable(f"pyth history: unexpected body {str(body)[:200]!r}")
            status = body.get("s")
            if status == "ok":
                rows = self._udf_rows(body)
                records = parse_page(rows, lambda row: self._parse_bar(dims, row, shift), source=self.source)
                # A UDF server may include the still-forming bar: only closed bars are returned.
                closed_before = timezone.now() - timedelta(seconds=seconds - shift)
                records = [r for r in records if start <= r.ts_event < end and r.ts_event <= closed_before]
                records.sort(key=lambda r: r.ts_event)
                if records or window_end >= hi:
                    return records[:limit]
                lo = window_end
            elif status == "no_data":
                next_time = body.get("nextTime")
                # nextTime points to the next bar with data (if any); jump there instead of walking empty windows.
                lo = max(window_end, int(next_time)) if isinstance(next_time, int | float) else window_end
            else:
                raise ProviderUnavailable(f"pyth history: status {status!r}: {body.get('errmsg', '')}")
        return []

    @staticmethod
    def _udf_rows(body: dict) -> list[dict]:
        times = body.get("t")
        if not isinstance(times, list):
            raise ProviderUnavailable("pyth history: 'ok' body without a 't' array")
        columns = {name: body.get(name) or [] for name in ("o", "h", "l", "c", "v")}
        return [
            {"t": t, **{name: (col[i] if i < len(col) else None) for name, col in columns.items()}}
            for i, t in enumerate(times)
        ]

    def _parse_bar(self, dims: FeedDims, row: dict, shift: int) -> NormalizedRecord:
        t = row["t"]
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise RecordRejected(f"bar time is not a number: {t!r}", BAD_TIMESTAMP)
        if dims.kind == "tick":
            values = {"price": row["c"]}
        else:
            values = {"open": row["o"], "high": row["h"], "low": row["l"], "close": row["c"]}
            if row.get("v") is not None:
                values["volume"] = row["v"]
        return NormalizedRecord(
            source=self.source,
            subject=dims.subject,
            kind=dims.kind,
            granularity=dims.granularity,
            ts_event=from_epoch(t + shift),
            values=values,
            meta={"from": "udf-history"} if shift else {},
        )
