"""Report-API throughput under gunicorn (2 workers) on loopback, against Postgres.

Seeds (once) 1,000 models, 1,000 inputs and 1,000,000 predictions (+ a score each) and a
1,000-row leaderboard into its own database, starts gunicorn, then sends a fixed number of
requests at a fixed concurrency to /reports/leaderboard, /reports/predictions?limit=100 and
/info (a trivial JSON view of the same server), and prints requests/s and p99 for each.

/reports/predictions is measured four ways: the first page and a deep page (half-way through,
reached by a cursor as a client following `Link` headers gets there), each with and without a
`model_id` filter; each is compared with the trivial view (target: >= 0.5x its req/s and a p99
<= 3x its p99, in the same run). The endpoints alternate in `--rounds` bursts (medians are
printed), and each line also gives the CPU a request cost the server: gunicorn plus the
PostgreSQL backends it talks to, which a busy shared machine disturbs less than req/s.

    .venv/bin/python bench/api_throughput.py --requests 1000 --rounds 3 --concurrency 8

`--compare-metrics` measures what the Prometheus request middleware costs instead: /info (and
/healthz) with the middleware (METRICS_ENABLED=true, multiprocess files as under run_node) and
without it, in alternating rounds of the same run, and prints the median of each and the cost:

    python bench/api_throughput.py --db-url postgres://postgres@127.0.0.1:5432/coord_i18_bench \
        --models 20 --inputs 20 --compare-metrics --rounds 5 --requests 2000

The load generator runs on the same machine as the server (2 cores here): figures are relative.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS, INPUTS = 1000, 1000
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def ensure_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed() -> None:
    import django

    django.setup()
    from django.db import connection, transaction

    from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
    from scoring.models import Leaderboard

    if (
        Prediction.objects.count() == MODELS * INPUTS
        and ParticipantModel.objects.count() == MODELS
        and Leaderboard.objects.exists()
    ):
        print("seed: already there")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE scoring_score, predictions_prediction, predictions_input, predictions_predictionconfig, "
            "predictions_model, scoring_leaderboard CASCADE"
        )
    with transaction.atomic():
        models = ParticipantModel.objects.bulk_create(
            ParticipantModel(
                model_id=f"model-{i:04d}", name=f"Model {i}", cruncher_id=f"c{i}", cruncher_name=f"Cruncher {i}"
            )
            for i in range(MODELS)
        )
        config = PredictionConfig.objects.create(
            scope_key="BTC-5m", scope_template={"subject": "BTC"}, interval_seconds=60, horizon_seconds=300
        )
        Input.objects.bulk_create(
            Input(
                config=config,
                scheduled_for=T0 + timedelta(minutes=i),
                scope={"subject": "BTC", "scope_key": "BTC-5m"},
                as_of=T0 + timedelta(minutes=i),
                resolvable_at=T0 + timedelta(minutes=i + 5),
                status="RESOLVED",
            )
            for i in range(INPUTS)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO predictions_prediction (input_id, model_id, config_id, scope_key, deployment_id, status,
                    failure_reason, failure_detail, output, exec_time_us, performed_at, resolvable_at)
                SELECT i.id, m.id, i.config_id, 'BTC-5m', '', 'SCORED', '', '',
                       jsonb_build_object('p_up', ((m.id * 7 + i.id) % 100) / 100.0), 1000, i.scheduled_for, i.resolvable_at
                FROM predictions_input i CROSS JOIN predictions_model m
                """
            )
            cursor.execute(
                """
                INSERT INTO scoring_score (prediction_id, model_id, input_id, scope_key, performed_at, value, result,
                    success, failed_reason, scored_at, late)
                SELECT p.id, p.model_id, p.input_id, p.scope_key, p.performed_at, ((p.id % 97) / 97.0) ^ 2,
                       '{}'::jsonb, true, '', p.resolvable_at, false
                FROM predictions_prediction p
                """
            )
        entries = [
            {
                "model_id": m.model_id,
                "model_name": m.name,
                "cruncher_id": m.cruncher_id,
                "cruncher_name": m.cruncher_name,
                "rank": rank,
                "metrics": {"score_recent": 0.1 + rank / 10000, "score_steady": 0.2, "score_anchor": 0.25},
                "score_ranking": {"key": "score_recent", "value": 0.1 + rank / 10000, "direction": "asc"},
                "coverage": 1.0,
                "prediction_count": INPUTS,
                "scored_count": INPUTS,
            }
            for rank, m in enumerate(models, start=1)
        ]
        Leaderboard.objects.create(created_at=T0 + timedelta(days=1), entries=entries, meta={})
    with connection.cursor() as cursor:
        # As autovacuum leaves a settled history (it may be off on a test machine): visibility
        # map set, statistics current.
        cursor.execute("VACUUM (ANALYZE)")
    print(f"seed: {MODELS} models, {MODELS * INPUTS} predictions + scores in {time.perf_counter() - started:.0f}s")


def deep_cursor(*, model_id: str | None) -> str:
    """The cursor a client holds half-way through the (optionally model-filtered) history."""
    from coordinator_site.boundary.params import encode_cursor
    from predictions.models import Prediction

    rows = Prediction.objects.order_by("-performed_at", "-id")
    if model_id:
        rows = rows.filter(model__model_id=model_id)
    performed_at, pk = rows.values_list("performed_at", "id")[rows.count() // 2]
    return encode_cursor(performed_at, pk)


def load(url: str, *, requests: int, concurrency: int) -> tuple[float, float, float, int]:
    """Send `requests` GETs from `concurrency` threads; (req/s, p50 ms, p99 ms, response bytes)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    size = 0

    def worker():
        nonlocal size
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
                    body = response.read()
                    status = response.status
            except Exception as exc:
                with lock:
                    errors.append(str(exc))
                continue
            elapsed = time.perf_counter() - t
            with lock:
                latencies.append(elapsed)
                size = len(body)
                if status != 200:
                    errors.append(f"HTTP {status}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{url}: {len(errors)} errors, e.g. {errors[0]}")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return requests / wall, statistics.median(latencies) * 1000, p99 * 1000, size


def main() -> None:
    global MODELS, INPUTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-url", default="postgres://postgres@127.0.0.1:5432/coord_api_bench")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--models", type=int, default=MODELS, help="Models to seed (small data: e.g. 20).")
    parser.add_argument("--inputs", type=int, default=INPUTS, help="Inputs to seed (each with a prediction per model).")
    parser.add_argument(
        "--compare-metrics", action="store_true", help="Measure /info with and without the metrics middleware."
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="Alternating rounds per endpoint (default 3; --compare-metrics: 5)."
    )
    args = parser.parse_args()
    MODELS, INPUTS = args.models, args.inputs

    env = {
        **os.environ,
        "DATABASE_URL": args.db_url,
        "SECRET_KEY": "bench-secret-key-bench-secret-key-bench-secret-key",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": "false",  # a line per request on the terminal would be measured too
    }
    env.pop("PYTEST_VERSION", None)
    ensure_database(args.db_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coordinator_site.settings")
    sys.path.insert(0, str(ROOT))
    seed()
    if args.seed_only:
        return

    if args.compare_metrics:
        args.rounds = args.rounds or 5
        compare_metrics(env, args)
        return
    server, base = serve(env, args.port)
    try:
        predictions = f"{base}/reports/predictions?limit=100"
        model = "model-0500"
        targets = {
            "trivial /info": f"{base}/info",
            "/reports/leaderboard": f"{base}/reports/leaderboard",
            "predictions first page": predictions,
            "predictions deep page": f"{predictions}&cursor={deep_cursor(model_id=None)}",
            "predictions model, first page": f"{predictions}&model_id={model}",
            "predictions model, deep page": f"{predictions}&model_id={model}&cursor={deep_cursor(model_id=model)}",
        }
        for url in targets.values():  # warm both workers (connections, caches, prepared statements)
            load(url, requests=20, concurrency=4)
        rounds = args.rounds or 3
        print(
            f"gunicorn 2 workers (gunicorn.conf.py), {rounds} rounds of {args.requests} requests per endpoint, "
            f"concurrency {args.concurrency}; endpoints alternate within each round (order rotated), so a change "
            f"of the machine's background load hits them alike; load average {os.getloadavg()[0]:.2f}"
        )
        bursts: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in targets}
        sizes = {}
        names = list(targets)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                before = server_cpu_seconds(server.pid) + database_cpu_seconds(args.db_url)
                client_before = time.process_time()
                rps, p50, p99, sizes[name] = load(targets[name], requests=args.requests, concurrency=args.concurrency)
                client = time.process_time() - client_before
                cpu = server_cpu_seconds(server.pid) + database_cpu_seconds(args.db_url) - before
                bursts[name].append((rps, p50, p99, cpu / args.requests * 1000, client / args.requests * 1000))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(
            f"{'endpoint':31} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'server CPU':>10} {'client CPU':>10} "
            f"{'bytes':>7}  req/s per round"
        )
        results = {}
        for name, values in bursts.items():
            rps, p50, p99, cpu, client = (statistics.median(v[i] for v in values) for i in range(5))
            results[name] = (rps, p99, cpu, client)
            print(
                f"{name:31} {rps:6.0f} {p50:7.1f} {p99:7.1f} {cpu:10.2f} {client:10.2f} {sizes[name]:7d}  "
                + " ".join(f"{v[0]:.0f}" for v in values)
            )
        print(
            "(medians over the rounds; CPU in ms per request: server = gunicorn + its PostgreSQL backends, "
            "client = this load generator)"
        )
        trivial_rps, trivial_p99, trivial_cpu, trivial_client = results["trivial /info"]
        ratio = results["/reports/leaderboard"][0] / trivial_rps
        print(f"leaderboard / trivial = {ratio:.2f} (target >= 0.70)")
        for name, (rps, p99, cpu, client) in results.items():
            if name.startswith("predictions"):
                per_round = sorted(b[0] / t[0] for b, t in zip(bursts[name], bursts["trivial /info"], strict=True))
                print(
                    f"{name} / trivial: {rps / trivial_rps:.2f}x req/s (target >= 0.50; per round: median "
                    f"{statistics.median(per_round):.2f}, {per_round[0]:.2f}-{per_round[-1]:.2f}), "
                    f"p99 {p99 / trivial_p99:.2f}x (target <= 3.00); server CPU {cpu / trivial_cpu:.2f}x, "
                    f"server + client CPU {(cpu + client) / (trivial_cpu + trivial_client):.2f}x"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)


def serve(env: dict[str, str], port: int) -> tuple[subprocess.Popen, str]:
    """gunicorn (2 sync workers) on loopback, once /info answers."""
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")),
        "coordinator_site.wsgi:application",
        "--workers", "2",
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(gunicorn, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/info", timeout=1).read()  # noqa: S310
            break
        except OSError:
            time.sleep(0.1)
    return server, base


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) of a gunicorn master and its workers so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(entry) == master_pid or int(fields[1]) == master_pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def database_cpu_seconds(db_url: str) -> float:
    """CPU time so far of the PostgreSQL backends serving gunicorn on this machine's database (by
    application_name; Linux /proc, server on this host). Connections live across requests
    (CONN_MAX_AGE), so the difference over a burst is what its queries cost the server."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'coordinator:gunicorn'"
            )
        ]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def compare_metrics(env: dict[str, str], args) -> None:
    """/info and /healthz with and without the metrics middleware, in the same run.

    Both servers run side by side (an idle one costs nothing) and the load alternates between
    them in short bursts, so a change in the machine's background load hits both alike."""
    import tempfile

    metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    quiet = {**env, "GUNICORN_ACCESS_LOG": "false", "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    variants = {
        "with metrics": {**quiet, "METRICS_ENABLED": "true"},
        "without metrics": {**quiet, "METRICS_ENABLED": "false"},
    }
    servers = {}
    try:
        for offset, (name, variant_env) in enumerate(variants.items()):
            servers[name] = serve(variant_env, args.port + offset)
        paths = ("/info", "/healthz")
        for _server, base in servers.values():
            for path in paths:
                load(f"{base}{path}", requests=200, concurrency=4)  # warm both workers
        figures: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        print(
            f"gunicorn 2 workers per variant, side by side; {args.rounds} alternating bursts of {args.requests} "
            f"requests per variant and endpoint, concurrency {args.concurrency}"
        )
        for round_number in range(args.rounds):
            names = list(servers) if round_number % 2 == 0 else list(reversed(servers))
            for path in paths:
                for name in names:
                    server, base = servers[name]
                    before = server_cpu_seconds(server.pid)
                    rps = load(f"{base}{path}", requests=args.requests, concurrency=args.concurrency)[0]
                    figures.setdefault((name, path), []).append(rps)
                    cpu.setdefault((name, path), []).append(
                        (server_cpu_seconds(server.pid) - before) / args.requests * 1000
                    )
        print(f"{'variant':18} {'endpoint':10} {'median req/s':>13} {'server CPU ms/req':>18}  req/s per burst")
        for (name, path), values in sorted(figures.items(), key=lambda item: (item[0][1], item[0][0])):
            cpu_ms = statistics.median(cpu[(name, path)])
            print(
                f"{name:18} {path:10} {statistics.median(values):13.0f} {cpu_ms:18.3f}  "
                + " ".join(f"{v:.0f}" for v in values)
            )
        for path in paths:
            on = statistics.median(figures[("with metrics", path)])
            off = statistics.median(figures[("without metrics", path)])
            cpu_on = statistics.median(cpu[("with metrics", path)])
            cpu_off = statistics.median(cpu[("without metrics", path)])
            print(
                f"metrics middleware cost on {path}: {(off - on) / off * 100:+.1f} % of throughput, "
                f"{(cpu_on - cpu_off) / cpu_off * 100:+.1f} % of server CPU per request (target <= 5 %)"
            )
        info_off = statistics.median(figures[("without metrics", "/info")])
        healthz_on = statistics.median(figures[("with metrics", "/healthz")])
        print(f"/healthz (with metrics) / /info (without) = {healthz_on / info_off:.2f}")
    finally:
        for server, _base in servers.values():
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
