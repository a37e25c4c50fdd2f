"""Local servers on loopback that speak the providers' real streaming protocols (no network).

`BinanceServer` (at the end): python-binance's combined WebSocket streams and REST klines.

`HermesServer`: Hermes server-sent events (`/v2/updates/price/stream`), `latest` and a
TradingView-UDF `/udf/history`, all from one timeline of per-second prices. Each stream connection
plays the next `Session` of a script: publish some seconds over the connection, optionally wait for
the test, then close it or go silent (socket held open, nothing sent). Seconds listed in `offline` are published while nobody is
connected: only `latest` and `history` can return them, as on the real service during an outage.
Event bodies are the recorded `latest` response (tests/feeds/fixtures/hermes_latest_btc.json) with
the price and publish time of each second filled in.
"""

import asyncio
import copy
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import websockets.asyncio.server

from tests.feeds.helpers import doc


def price_of(second: int) -> float:
    """The truth of the test timeline: a price per second, exact in 10^-8 units."""
    return 60000 + (second % 1000) / 8


def mantissa(price: float) -> str:
    return str(round(price * 10**8))


def peer_closed(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    try:
        return bool(readable) and not sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return True


@dataclass
class Session:
    """One stream connection: publish `send` (seconds) over it, then `then` = close | silent; `offline`
    seconds are published after it ends, before the next connection."""

    send: list[int | dict]  # a second to publish, or a document to send as it is
    then: str = "close"
    offline: list[int] = field(default_factory=list)
    hold: threading.Event | None = None  # after sending, wait for the test to set it before `then`
    refuse: tuple[int, dict] | None = None  # answer the stream request with this (status, headers) instead


class HermesServer:
    def __init__(self, sessions: list[Session], *, interval: float = 0.02) -> None:
        self.sessions = list(sessions)
        self.interval = interval
        self.published: set[int] = set()
        self.connections = 0
        self.history_requests: list[dict] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.update = doc("hermes_latest_btc.json")
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the stream body ends when the connection closes

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if self.headers.get("Authorization") != "Bearer test-key" and not url.path.startswith("/udf"):
                    return self._json(401, {"error": "missing key"})
                if url.path == "/v2/updates/price/stream":
                    return server._stream(self, query)
                if url.path == "/v2/updates/price/latest":
                    newest = max(server.published, default=None)
                    return self._json(200, server.body([newest] if newest is not None else []))
                if url.path == "/udf/history":
                    return self._json(200, server.history(query))
                return self._json(404, {"error": url.path})

            def _json(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "HermesServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- bodies -------------------------------------------------------------------------------
    def body(self, seconds: list[int]) -> dict:
        """A `latest`-shaped document with one parsed update per second (the recorded shape)."""
        document = copy.deepcopy(self.update)
        template = document["parsed"][0]
        document["parsed"] = []
        for second in seconds:
            item = copy.deepcopy(template)
            for key in ("price", "ema_price"):
                item[key]["price"] = mantissa(price_of(second))
                item[key]["publish_time"] = second
            item["metadata"]["prev_publish_time"] = second - 1
            item["metadata"]["proof_available_time"] = second + 1
            document["parsed"].append(item)
        return document

    def history(self, query: dict) -> dict:
        """UDF 1-second bars whose close (stamped at the bar's end by the provider) is published."""
        lo, hi = int(query["from"][0]), int(query["to"][0])
        with self.lock:
            self.history_requests.append({"from": lo, "to": hi})
            bars = [t for t in range(lo, hi + 1) if t + 1 in self.published]
        if not bars:
            return {"s": "no_data"}
        closes = [price_of(t + 1) for t in bars]
        return {"s": "ok", "t": bars, "o": closes, "h": closes, "l": closes, "c": closes, "v": [1.0] * len(bars)}

    # --- the stream ---------------------------------------------------------------------------
    def _stream(self, handler: BaseHTTPRequestHandler, query: dict) -> None:
        with self.lock:
            session = self.sessions.pop(0) if self.sessions else Session(send=[], then="silent")
            if session.refuse is None:
                self.connections += 1
        if session.refuse is not None:
            status, headers = session.refuse
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        try:
            for item in session.send:
                if isinstance(item, int):
                    with self.lock:
                        self.published.add(item)
                document = self.body([item]) if isinstance(item, int) else item
                handler.wfile.write(f"data:{json.dumps(document)}\n\n".encode())
                handler.wfile.flush()
                time.sleep(self.interval)
            while session.hold is not None and not session.hold.wait(0.05) and not self.closing.is_set():
                pass
            if session.then == "silent":  # the socket stays open and says nothing, until the client leaves
                while not self.closing.wait(0.05) and not peer_closed(handler.connection):
                    pass
        except OSError:
            pass  # the client went away
        finally:
            with self.lock:
                self.published.update(session.offline)


# --- Binance: combined WebSocket streams + REST klines ------------------------------------------------


def kline_row(second: int) -> list:
    """A REST kline (12 fields, the recorded shape) of the 1-second bar opening at `second`."""
    price = price_of(second)
    return [
        second * 1000,
        f"{price:.8f}",
        f"{price + 1:.8f}",
        f"{price - 1:.8f}",
        f"{price:.8f}",
        "1.50000000",
        second * 1000 + 999,
        f"{price * 1.5:.8f}",
        7,
        "0.70000000",
        f"{price * 0.7:.8f}",
        "0",
    ]


@dataclass
class WsSession:
    """One WebSocket connection: send `send` (messages), wait for `hold`, then `then` = close | silent;
    `offline` (bar seconds) is published after it ends, for REST only."""

    send: list[dict]
    then: str = "close"
    offline: list[int] = field(default_factory=list)
    hold: threading.Event | None = None


class BinanceServer:
    """python-binance's combined stream endpoint (`/stream?streams=...`) and `/api/v3/klines` on loopback.

    WebSocket messages are the recorded shapes (fixtures binance_ws_kline_1s.json, binance_ws_trade.json)
    with times and prices filled in by `kline_message` / `trade_message`; a closed kline published over
    the socket also becomes visible to REST, like the offline ones."""

    def __init__(self, sessions: list[WsSession], *, interval: float = 0.02) -> None:
        self.sessions = list(sessions)
        self.interval = interval
        self.published: set[int] = set()
        self.connections = 0
        self.paths: list[str] = []
        self.kline_requests: list[dict] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.kline_template = doc("binance_ws_kline_1s.json")
        self.trade_template = doc("binance_ws_trade.json")
        server = self

        class Rest(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path != "/api/v3/klines":
                    return self._json(404, {"code": -1, "msg": url.path})
                return self._json(200, server.klines(query))

            def _json(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
        self.httpd.daemon_threads = True
        self.rest_thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.loop = asyncio.new_event_loop()
        self.ws_thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.ws_port = 0

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    def __enter__(self) -> "BinanceServer":
        self.rest_thread.start()
        self.ws_thread.start()

        async def serve():
            return await websockets.asyncio.server.serve(self._handler, "127.0.0.1", 0, close_timeout=0.5)

        self.ws_server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(timeout=10)
        self.ws_port = self.ws_server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()

        async def shutdown() -> None:
            self.ws_server.close()
            await self.ws_server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.ws_thread.join(timeout=5)
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- messages -------------------------------------------------------------------------------
    def kline_message(self, second: int, *, closed: bool, close: float | None = None) -> dict:
        message = copy.deepcopy(self.kline_template)
        row = kline_row(second)
        kline = message["data"]["k"]
        kline.update(t=row[0], T=row[6], o=row[1], h=row[2], l=row[3], c=row[4], v=row[5], q=row[7], n=row[8], x=closed)
        if close is not None:
            kline["c"] = f"{close:.8f}"
        message["data"]["E"] = row[6] + 3
        return message

    def send_later(self, messages: list[tuple[float, dict]]) -> None:
        """Send each message on the open connection(s) at its wall-clock time (seconds), as the exchange does."""

        async def send_all() -> None:
            for at, message in messages:
                await asyncio.sleep(max(0.0, at - time.time()))
                for connection in list(self.ws_server.connections):
                    await connection.send(json.dumps(message))

        asyncio.run_coroutine_threadsafe(send_all(), self.loop)

    def trade_message(self, at_ms: int, price: float, trade_id: int) -> dict:
        message = copy.deepcopy(self.trade_template)
        message["data"].update(E=at_ms + 1, T=at_ms, p=f"{price:.8f}", t=trade_id)
        return message

    def klines(self, query: dict) -> list:
        with self.lock:
            self.kline_requests.append(query)
            seconds = sorted(self.published)
        limit = int(query.get("limit", 500))
        if "startTime" in query:
            lo, hi = int(query["startTime"]) // 1000, int(query.get("endTime", 10**13)) // 1000
            return [kline_row(s) for s in seconds if lo <= s <= hi][:limit]
        return [kline_row(s) for s in seconds[-limit:]]

    # --- the socket -----------------------------------------------------------------------------
    async def _handler(self, connection) -> None:
        with self.lock:
            self.connections += 1
            self.paths.append(connection.request.path)
            session = self.sessions.pop(0) if self.sessions else WsSession(send=[], then="silent")
        try:
            for message in session.send:
                data = message.get("data", {})
                if data.get("e") == "kline" and data["k"]["x"]:
                    with self.lock:
                        self.published.add(data["k"]["t"] // 1000)
                await connection.send(json.dumps(message))
                await asyncio.sleep(self.interval)
            while session.hold is not None and not session.hold.is_set() and not self.closing.is_set():
                await asyncio.sleep(0.05)
            if session.then == "silent":  # open, says nothing (pings still answered), until the client leaves
                while not self.closing.is_set():
                    try:
                        await asyncio.wait_for(connection.wait_closed(), timeout=0.1)
                        break
                    except TimeoutError:
                        continue
        finally:
            with self.lock:
                self.published.update(session.offline)
