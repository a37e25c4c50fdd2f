"""The demo node, watched as an operator would: health sampled every second, a worker stopped and
resumed; and a real Prometheus (Debian's `prometheus`) scraping it on loopback."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.db import close_old_connections, connection

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint
from checkpoints.services import checkpoint_confirm
from coordinator_site.models import WorkerHeartbeat
from coordinator_site.transitions import InvalidTransition
from tests.e2e.processes import free_port, start, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("run_feed", "run_predict", "run_score", "run_checkpoint", "load_prediction_configs")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(command not in get_commands() for command in NEEDED), reason="needs the four worker commands"
    ),
]


def demo_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.demo").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def start_node(worker_env, manage_py, tmp_path, **extra):
    configs = tmp_path / "configs.json"
    configs.write_text(
        json.dumps(
            [
                {
                    "scope_key": "BTC-2s-3s",
                    "scope_template": {"subject": "BTC"},
                    "interval_seconds": 2,
                    "horizon_seconds": 3,
                }
            ]
        )
    )
    port = free_port()
    env = {
        **worker_env,
        **{k: v for k, v in demo_env().items() if k != "DATABASE_URL"},
        "PREDICTION_CONFIGS_PATH": str(configs),
        "CHECKPOINT_INTERVAL_SECONDS": "30",
        "SNAPSHOT_PERIOD_SECONDS": "10",  # divides the checkpoint interval (system check E020)
        "CHECKPOINT_GRACE_SECONDS": "3",
        "WORKER_HEARTBEAT_SECONDS": "1",
        "HEALTH_CACHE_SECONDS": "1",
        "WORKER_LOG_SUMMARY_SECONDS": "10",
        "STATIC_ROOT": str(tmp_path / "static"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **extra,
    }
    process, output = start([*manage_py, "run_node", "--bind", f"127.0.0.1:{port}", "--backoff-max", "1"], env)
    return process, output, port


def get(url: str) -> tuple[int, bytes]:
    assert url.startswith("http://127.0.0.1:")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http only
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Sample:
    level: str
    reason: str
    computed_at: datetime
    checks: list


def sample(port: int) -> Sample:
    """/reports/health, /healthz and the badge, read together; they must agree on the verdict.

    Each carries when its verdict was computed: if the cached verdict was refreshed between the
    three requests, they are read again (a fresh verdict may differ; one verdict never does)."""
    base = f"http://127.0.0.1:{port}"
    for _ in range(5):
        node_status, node_body = get(f"{base}/reports/health")
        healthz_status, healthz_body = get(f"{base}/healthz")
        page_status, page_body = get(f"{base}/health")
        node, healthz, page = json.loads(node_body), json.loads(healthz_body), page_body.decode()
        badge = re.search(r'data-health="(\w+)" data-health-at="([^"]+)"', page)
        assert badge, page[:2000]
        stamps = {datetime.fromisoformat(t) for t in (node["computed_at"], healthz["computed_at"], badge.group(2))}
        if len(stamps) > 1:
            continue
        assert healthz_status == 200, healthz  # liveness never fails on a worker
        assert healthz["status"] == "ok", healthz
        assert page_status == 200
        assert node["level"] == healthz["level"] == badge.group(1), (node, healthz, badge.groups())
        assert node_status == (503 if node["level"] == "red" else 200)
        return Sample(node["level"], node["reason"], stamps.pop(), node["checks"])
    raise AssertionError("the three readers never showed one verdict")


def watch(port: int, seconds: float, *, until=None, operator=None) -> list[Sample]:
    """One sample a second for `seconds` (or until `until(samples so far)`); `operator()` acts
    before each sample."""
    samples, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if operator:
            operator()
        samples.append(sample(port))
        if until and until(samples):
            break
        time.sleep(max(0.0, 1.0 - (time.monotonic() % 1.0)))
    return samples


def web_up(port: int, process) -> bool:
    assert process.poll() is None, "run_node exited"
    try:
        return get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


def back_levels(samples: list[Sample]) -> list[str]:
    """The trailing run of green samples (empty after any sample that is not green)."""
    run = []
    for s in samples:
        run = [*run, "green"] if s.level == "green" else []
    return run


SOLANA_SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


def confirm_built_checkpoints():
    """The operator's part: confirm each built checkpoint (a 30 s period left unconfirmed for a
    period is amber, rightly, and this walk-through outlasts several periods)."""
    close_old_connections()
    for checkpoint in Checkpoint.objects.filter(status=CheckpointStatus.PENDING):
        with contextlib.suppress(InvalidTransition):  # not verified yet: red on its own, shown
            checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="e2e", override_reason="demo")


def score_worker():
    close_old_connections()
    return WorkerHeartbeat.objects.filter(name="run_score", stopped_at__isnull=True).order_by("-last_beat_at").first()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the health walk-through runs on PostgreSQL")
def test_demo_health_is_green_red_within_two_cadences_of_a_stopped_worker_then_green(worker_env, manage_py, tmp_path):
    process, output, port = start_node(worker_env, manage_py, tmp_path, GUNICORN_WORKERS="1")
    stopped_pid = None
    try:
        assert wait_for(lambda: web_up(port, process), timeout=120), output.text[-5000:]
        warm = watch(port, 120, until=lambda ss: ss[-1].level == "green", operator=confirm_built_checkpoints)
        assert warm[-1].level == "green", ([(s.level, s.reason) for s in warm[-5:]], output.text[-3000:])

        steady = watch(port, 30, operator=confirm_built_checkpoints)
        assert len(steady) >= 20
        not_green = [(s.computed_at.isoformat(), s.level, s.reason) for s in steady if s.level != "green"]
        assert not not_green, f"{not_green}\n{output.text[-5000:]}"

        beat = score_worker()
        cadence = next(c for c in steady[-1].checks if c["stage"] == "worker" and c["name"] == "run_score")["values"][
            "cadence_seconds"
        ]
        os.kill(beat.pid, signal.SIGSTOP)
        stopped_pid, stopped_at = beat.pid, time.time()
        went_red = watch(
            port, 4 * cadence + 10, until=lambda ss: ss[-1].level == "red", operator=confirm_built_checkpoints
        )
        red = went_red[-1]
        assert red.level == "red", [(s.level, s.reason) for s in went_red]
        assert "worker run_score: no heartbeat for" in red.reason, red.reason
        # Red within twice its cadence of the stop, by the verdict's own timestamp.
        assert red.computed_at.timestamp() - stopped_at <= 2 * cadence, (red, cadence)
        assert process.poll() is None
        assert score_worker().pid == stopped_pid  # stopped, not restarted
        print(
            f"health walk-through: {len(steady)} green samples; run_score cadence {cadence:.0f}s; red "
            f"{red.computed_at.timestamp() - stopped_at:.1f}s after SIGSTOP ({red.reason}); "
            f"levels while stopped: {[s.level for s in went_red]}"
        )
        resumed_at = time.time()

        os.kill(stopped_pid, signal.SIGCONT)
        stopped_pid = None
        # Green again once the worker beats and has drained what piled up while it was stopped,
        # and it stays green (five samples in a row).
        back = watch(port, 90, until=lambda ss: len(back_levels(ss)) >= 5, operator=confirm_built_checkpoints)
        assert len(back_levels(back)) >= 5, [(s.level, s.reason) for s in back]
        first_green = next(s for s in back if s.level == "green")
        print(
            f"green again {first_green.computed_at.timestamp() - resumed_at:.1f}s after SIGCONT: "
            f"{[(s.level, s.reason) for s in back if s.level != 'green']}"
        )
    finally:
        if stopped_pid:
            os.kill(stopped_pid, signal.SIGCONT)
        stop(process)
    summaries = [line for line in output.lines if "run_feed summary:" in line]
    per_record = [line for line in output.lines if "run_feed unit found" in line]
    assert summaries, "the feed logs a summary line per interval"
    assert not per_record, "and no INFO line per unit"


PROMETHEUS = shutil.which("prometheus")


def prometheus_query(port: int, query: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    status, body = get(url)
    assert status == 200, body
    payload = json.loads(body)
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)")
def test_a_real_prometheus_scrapes_every_process_of_a_running_node(worker_env, manage_py, tmp_path):
    process, output, port = start_node(worker_env, manage_py, tmp_path, GUNICORN_WORKERS="2")
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{ROOT / 'deploy' / 'prometheus' / 'alerts.yml'}]\n"
        "scrape_configs:\n"
        "  - job_name: coordinator\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:

        def scraped(query, minimum=1):
            assert process.poll() is None, output.text[-5000:]
            try:
                result = prometheus_query(prom_port, query)
            except (OSError, json.JSONDecodeError):
                return None
            return result if len(result) >= minimum else None

        def prometheus_ready():
            try:
                return get(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200
            except OSError:
                return False

        # Prometheus answers 503 until its storage is open (slow on a loaded machine).
        assert wait_for(prometheus_ready, timeout=120), "prometheus did not become ready"
        assert wait_for(lambda: scraped('up{job="coordinator"} == 1'), timeout=120), output.text[-5000:]
        # every process of the node: two gunicorn workers and the four workers
        roles = wait_for(lambda: scraped("coordinator_process_up == 1", minimum=6), timeout=120)
        assert roles, (prometheus_query(prom_port, "coordinator_process_up"), output.text[-5000:])
        by_role = {}
        for series in roles:
            by_role.setdefault(series["metric"]["role"], set()).add(series["metric"]["pid"])
        assert set(by_role) == {"web", "run_feed", "run_predict", "run_score", "run_checkpoint"}, by_role
        assert len(by_role["web"]) == 2, by_role
        # the stage series and the per-process series they come with
        lag = wait_for(lambda: scraped("coordinator_feed_lag_seconds"), timeout=60)
        assert lag[0]["metric"]["stream"] == "synthetic/BTC/tick/1s"
        assert wait_for(lambda: scraped("coordinator_predict_slot_lateness_seconds_count > 0"), timeout=90)
        assert wait_for(lambda: scraped("coordinator_score_backlog_inputs"), timeout=60)
        assert wait_for(lambda: scraped("coordinator_feed_records_ingested_total > 0"), timeout=60)
        assert wait_for(lambda: scraped("coordinator_model_answers_total"), timeout=60)
        assert wait_for(lambda: scraped("coordinator_score_predictions_scored_total > 0"), timeout=120)
        workers = wait_for(lambda: scraped("coordinator_worker_up == 1", minimum=4), timeout=60)
        assert {s["metric"]["worker"] for s in workers} == {"run_feed", "run_predict", "run_score", "run_checkpoint"}
        # the shipped rules load into this Prometheus, and nothing fires on a healthy node
        rules = json.loads(get(f"http://127.0.0.1:{prom_port}/api/v1/rules")[1])["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"CoordinatorWorkerDown", "CoordinatorFeedStale"}
        assert not prometheus_query(prom_port, 'ALERTS{alertstate="firing"}')
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prometheus.kill()
        stop(process)
