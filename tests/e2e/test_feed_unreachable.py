"""A live feed that cannot be reached: the node keeps running, the feed worker reports the error
and retries, and /healthz shows it (binance pointed at a closed local port; no network)."""

import json
import urllib.request

import pytest
from django.core.management import get_commands
from django.db import close_old_connections
from django.urls import NoReverseMatch, reverse

from coordinator_site.models import WorkerHeartbeat
from tests.e2e.processes import alive, free_port, start, stop, wait_for


def healthz_routed() -> bool:
    try:
        reverse("healthz")
    except NoReverseMatch:
        return False
    return True


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "run_feed" not in get_commands() or not healthz_routed(),
        reason="needs run_feed and the /healthz endpoint, not both on this branch yet",
    ),
]


def feed_state():
    from feeds.models import FeedIngestionState

    close_old_connections()
    return FeedIngestionState.objects.filter(source="binance").first()


def test_an_unreachable_feed_keeps_the_node_running_and_healthz_shows_the_error(manage_py, worker_env, tmp_path):
    port, dead_port = free_port(), free_port()
    env = {
        **worker_env,
        "FEED_SOURCE": "binance",
        "FEED_KIND": "candle",
        "FEED_GRANULARITY": "1m",
        "BINANCE_API_URL": f"http://127.0.0.1:{dead_port}/api",
        "FEED_HTTP_TIMEOUT_SECONDS": "1",
        "FEED_POLL_SECONDS": "1",
        "WORKER_HEARTBEAT_SECONDS": "0.5",
        "STATIC_ROOT": str(tmp_path / "static"),
        "GUNICORN_WORKERS": "1",
    }
    process, output = start([*manage_py, "run_node", "--bind", f"127.0.0.1:{port}", "--child", "feed=run_feed"], env)
    try:
        assert wait_for(lambda: (s := feed_state()) and s.consecutive_errors >= 2, timeout=90), output.text
        beat = WorkerHeartbeat.objects.get(name="run_feed")
        assert "binance" in beat.last_error
        assert alive(beat.pid), "the feed worker died instead of retrying"
        assert process.poll() is None
        assert not output.contains("exited with"), "the feed worker was restarted: it should have survived"

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
        feed = next(w for w in health["workers"] if w["name"] == "run_feed")
        assert feed["pid"] == beat.pid
        assert "binance" in feed["last_error"]
        # /healthz stays 200 (the web process is fine) but its level says the node is not.
        assert health["status"] == "ok"
        assert health["level"] in ("amber", "red"), health
        assert "feed binance/BTC/candle/1m" in health["reason"], health["reason"]
    finally:
        stop(process)
