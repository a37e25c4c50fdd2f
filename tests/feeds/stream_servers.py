"""Local servers on loopback that speak the providers' real streaming protocols (no network).

`HermesServer`: Hermes server-sent events (`/v2/updates/price/stream`), `latest` and a
TradingView-UDF `/udf/history`, all from one timeline of per-second prices. Each stream connection
plays the next `Session` of a script: publish some seconds over the connection, optionally wait for
the test, then close it or go silent (socket held open, nothing sent). Seconds listed in `offline` are published while nobody is
connected: only `latest` and `history` can return them, as on the real service during an outage.
Event bodies are the recorded `latest` response (tests/feeds/fixtures/hermes_latest_btc.json) with
the price and publish time of each second filled in.
"""

import copy
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

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

    send: list[int]
    then: str = "close"
    offline: list[int] = field(default_factory=list)
    hold: threading.Event | None = None  # after sending, wait for the test to set it before `then`


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
            self.connections += 1
            session = self.sessions.pop(0) if self.sessions else Session(send=[], then="silent")
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        try:
            for second in session.send:
                with self.lock:
                    self.published.add(second)
                handler.wfile.write(f"data:{json.dumps(self.body([second]))}\n\n".encode())
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
