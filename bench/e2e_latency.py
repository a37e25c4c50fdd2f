"""End-to-end latency of the whole node, stream + wake-ups against poll + sleeps (prints figures, asserts nothing).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coord_e2e \\
        .venv/bin/python bench/e2e_latency.py [--seconds 60] [--models 100] [--modes stream poll]

A Hermes-like source on loopback publishes 10 price updates a second (jittered; server-sent events on
`/v2/updates/price/stream`, the same documents on `/latest`, 1 s bars on a UDF `/udf/history`).
`run_feed` (FEED_SOURCE=pyth, pointed at it), `run_predict` (N trivial local models, one config
every 1 s) and `run_score` run as real subprocesses on PostgreSQL, in a database of their own
(`<prefix>_<mode>`, cloned from a migrated `<prefix>_tpl`; all dropped at the end). Each mode
runs `--seconds` after a warm-up (the first Input written), then until the window's Inputs are
scored (or `--horizon` + 15 s). Modes, in one run on one machine:

- stream: FEED_MODE=stream, wake-ups on, EVENT_TICKS=auto (the node's defaults: models are ticked
          as tape records arrive, so a slot's cycle only asks `predict`);
- poll:   FEED_MODE=poll, FEED_POLL_SECONDS=5, `run_predict --sleep 0.5`, `run_score --sleep 2`,
          WAKEUP_ENABLED=false, EVENT_TICKS=off (the node before issue 15: tick + predict at the slot).

Figures, p50/p99 in ms over the window:

(a) source publish -> record committed: for every update published, until the tape first holds
    it or a newer one (Hermes' `publish_time` is whole seconds, so the source also carries each
    update's send time in `conf`; the tape is stamped at COMMIT by a NOTIFY trigger the bench
    adds to its own database);
(b) slot -> all predictions committed (`Input.scheduled_for` -> the COMMIT of the cycle's one
    write, same trigger), split into the scheduling delay (slot -> `Input.received_at`, the
    cycle's start) and the cycle's own work (its start -> COMMIT);
(c) age of the newest record the models saw: `Input.received_at` - the send time of the newest
    record in `Input.raw_data`, and, as the node stores it, `received_at - Input.as_of` (whole
    seconds);
(d) `Input.resolvable_at` -> score committed (the COMMIT that makes the Input RESOLVED), split into
    the data (resolvable_at -> the first tape COMMIT holding a record at or after it: the exit is
    final only then) and the scorer (that COMMIT -> the score's COMMIT).

Commit times are the arrival of the NOTIFY in this process (sub-millisecond on loopback, plus
this process's own scheduling on a loaded machine). The load average is printed with each mode.
"""

import argparse
import bisect
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse, urlunparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BTC_FEED_ID = "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43"
API_KEY = "bench-key"
SOURCE_INTERVAL = 0.1  # 10 updates a second
MODEL_CODE = """from cruncher import ModelBaseClass


class Trivial(ModelBaseClass):
    def tick(self, data):
        self.n = len(data["records"])

    def predict(self, subject, horizon_seconds, step_seconds):
        return {"p_up": 0.5}
"""
# Stamps the COMMIT of each tape change that carries a send time, of each new Input (the cycle's
# one write: Input + every Prediction) and of each Input leaving RECEIVED (its scores' write).
TRIGGERS_SQL = """
CREATE FUNCTION bench_tape_notify() RETURNS trigger AS $$
BEGIN
    IF NEW."values" ? 'conf' THEN
        PERFORM pg_notify('bench_tape', NEW."values"->>'conf');
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_tape AFTER INSERT OR UPDATE ON feeds_feedrecord
    FOR EACH ROW EXECUTE FUNCTION bench_tape_notify();
CREATE FUNCTION bench_input_notify() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('bench_inputs', 'new:' || NEW.id);
    ELSIF OLD.status = 'RECEIVED' AND NEW.status <> 'RECEIVED' THEN
        PERFORM pg_notify('bench_inputs', 'done:' || NEW.id);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_input AFTER INSERT OR UPDATE ON predictions_input
    FOR EACH ROW EXECUTE FUNCTION bench_input_notify();
"""

MODES = {
    "stream": {
        "title": "stream: FEED_MODE=stream, wake-ups (LISTEN/NOTIFY), EVENT_TICKS=auto",
        "env": {"FEED_MODE": "stream", "WAKEUP_ENABLED": "true", "EVENT_TICKS": "auto", "FEED_POLL_SECONDS": "5"},
    },
    "poll": {
        "title": "poll: FEED_MODE=poll, FEED_POLL_SECONDS=5, sleeps 0.5 s / 2 s, WAKEUP_ENABLED=false, EVENT_TICKS=off",
        "env": {"FEED_MODE": "poll", "WAKEUP_ENABLED": "false", "EVENT_TICKS": "off", "FEED_POLL_SECONDS": "5"},
    },
}
# The old sleeps (the commands' defaults), passed explicitly in both modes.
WORKERS = {"run_feed": ["--sleep", "1"], "run_predict": ["--sleep", "0.5"], "run_score": ["--sleep", "2"]}


# --- the source ---------------------------------------------------------------------------------


def price_at(t: float) -> float:
    """A smooth, deterministic BTC-like price (the figures do not depend on it)."""
    return 60000 * (1 + 0.002 * math.sin(t / 7) + 0.0005 * math.sin(t / 1.3))


def mantissa(value: float) -> str:
    return str(round(value * 10**8))


class HermesSource:
    """Publishes one parsed price update every SOURCE_INTERVAL s on average (from its own thread) to every
    stream connection; `latest` answers the newest; `/udf/history` serves 1 s bars up to now."""

    def __init__(self) -> None:
        self.updates: list[float] = []  # send times (epoch s), in order
        self.documents: list[str] = []
        self.changed = threading.Condition()
        self.closing = threading.Event()
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the stream's body ends when the connection closes

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/udf/history":
                    return self._json(source.history(parse_qs(url.query)))
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self._json({"error": "missing key"}, status=401)
                if url.path == "/v2/updates/price/latest":
                    with source.changed:
                        newest = source.documents[-1] if source.documents else json.dumps({"parsed": []})
                    return self._json(newest)
                if url.path == "/v2/updates/price/stream":
                    return source.stream(self)
                return self._json({"error": url.path}, status=404)

            def _json(self, payload, status: int = 200) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.threads = [
            threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True),
            threading.Thread(target=self.publish, daemon=True),
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "HermesSource":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        with self.changed:
            self.changed.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def publish(self) -> None:
        # 10 a second on average, each gap uniform in [0.5, 1.5] x the interval: a metronome would fix
        # the phase between updates and slots for a whole run, and with it figure (c).
        gaps = random.Random(42)
        due = time.monotonic()
        slot = 0
        while not self.closing.is_set():
            due += SOURCE_INTERVAL * gaps.uniform(0.5, 1.5)
            time.sleep(max(0.0, due - time.monotonic()))
            sent = time.time()
            slot += 1
            price = {"price": mantissa(price_at(sent)), "conf": mantissa(sent), "expo": -8, "publish_time": int(sent)}
            document = {
                "binary": {"encoding": "hex", "data": ["504e4155"]},
                "parsed": [
                    {
                        "id": BTC_FEED_ID,
                        "price": price,
                        "ema_price": dict(price),
                        "metadata": {
                            "slot": slot,
                            "proof_available_time": int(sent) + 1,
                            "prev_publish_time": int(sent - SOURCE_INTERVAL),
                        },
                    }
                ],
            }
            with self.changed:
                self.updates.append(sent)
                self.documents.append(json.dumps(document))
                self.changed.notify_all()

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        with self.changed:
            cursor = len(self.documents)
        try:
            while not self.closing.is_set():
                with self.changed:
                    self.changed.wait_for(
                        lambda seen=cursor: len(self.documents) > seen or self.closing.is_set(), timeout=1
                    )
                    fresh = self.documents[cursor:]
                cursor += len(fresh)
                for document in fresh:
                    handler.wfile.write(f"data:{document}\n\n".encode())
                handler.wfile.flush()
        except OSError:
            pass  # the client went away

    def history(self, query: dict) -> dict:
        """UDF 1 s bars [from, to] that have closed (a tick back-fill stamps each at its end)."""
        lo, hi = int(query["from"][0]), min(int(query["to"][0]), int(time.time()) - 1)
        bars = list(range(lo, hi + 1))
        if not bars:
            return {"s": "no_data"}
        closes = [price_at(t + 1) for t in bars]
        return {"s": "ok", "t": bars, "o": closes, "h": closes, "l": closes, "c": closes, "v": [1.0] * len(bars)}


# --- commit observer ----------------------------------------------------------------------------


class CommitObserver:
    """LISTENs to the bench triggers on its own connection; stamps each notification on arrival."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN bench_tape")
        self.conn.execute("LISTEN bench_inputs")
        self.tape: list[tuple[float, float]] = []  # (commit, send time carried)
        self.new_input: dict[int, float] = {}
        self.done_input: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            for note in self.conn.notifies(timeout=0.2):
                now = time.time()
                if note.channel == "bench_tape":
                    self.tape.append((now, float(note.payload)))
                else:
                    kind, _, pk = note.payload.partition(":")
                    (self.new_input if kind == "new" else self.done_input).setdefault(int(pk), now)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.conn.close()


# --- databases ----------------------------------------------------------------------------------


def database_url(base: str, name: str) -> str:
    return urlunparse(urlparse(base)._replace(path=f"/{name}"))


def admin(base: str, sql: str) -> None:
    with psycopg.connect(database_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def worker_env(url: str, extra: dict[str, str]) -> dict[str, str]:
    drop = ("PYTEST_VERSION", "PYTEST_CURRENT_TEST", "DJANGO_SETTINGS_MODULE", "EXTRA_INSTALLED_APPS")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("FEED_", "PYTH_", "WAKEUP_"))}
    return {
        **env,
        "ENV_FILE": os.devnull,  # the settings below and the defaults, not a local .env
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-not-secret",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def manage(argv: list[str], env: dict[str, str], *, log: Path | None = None, wait: bool = True):
    command = [sys.executable, str(ROOT / "manage.py"), *argv]
    if wait:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        return done
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


# --- one mode -----------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_mode(mode: str, *, base: str, prefix: str, options, workdir: Path) -> dict:
    name = f"{prefix}_{mode}"
    url = database_url(base, name)
    admin(base, f'DROP DATABASE IF EXISTS "{name}"')
    admin(base, f'CREATE DATABASE "{name}" TEMPLATE "{prefix}_tpl"')
    result = {"mode": mode, "load_before": load_average()}
    processes: dict[str, subprocess.Popen] = {}
    observer = CommitObserver(url)
    try:
        with HermesSource() as source:
            env = worker_env(
                url,
                {
                    **MODES[mode]["env"],
                    "FEED_SOURCE": "pyth",
                    "FEED_SUBJECTS": "BTC",
                    "FEED_KIND": "tick",
                    "FEED_GRANULARITY": "1s",
                    "FEED_BACKFILL_MINUTES": "2",
                    "PYTH_HERMES_URL": source.url,
                    "PYTH_API_KEY": API_KEY,
                    "PYTH_HISTORY_URL": f"{source.url}/udf",
                    "PREDICTION_CONFIGS_PATH": str(workdir / "configs.json"),
                    "MODEL_GATEWAY": "local",
                    "MODELS_DIR": str(workdir / "models"),
                    "MODEL_BASE_CLASSNAME": "cruncher.ModelBaseClass",
                    "WORKER_LOG_SUMMARY_SECONDS": "3600",
                },
            )
            manage(["load_prediction_configs"], env)  # first slot: the current one
            for worker, argv in WORKERS.items():
                processes[worker] = manage([worker, *argv], env, log=workdir / f"{mode}-{worker}.log", wait=False)
            warmup_deadline = time.monotonic() + options.warmup_timeout
            while not observer.new_input and time.monotonic() < warmup_deadline:
                check_alive(processes, workdir, mode)
                time.sleep(0.2)
            if not observer.new_input:
                raise SystemExit(f"{mode}: no Input within {options.warmup_timeout:.0f} s; see {workdir}")
            time.sleep(2)  # past the first cycles (a model load, the first back-fill)
            start = time.time()
            time.sleep(options.seconds)
            end = time.time()
            result["load_during"] = load_average()
            # Until every slot of the window is scored (or the bound), so (a) and (d) see their commits.
            deadline = time.monotonic() + options.horizon + 15
            while time.monotonic() < deadline:
                check_alive(processes, workdir, mode)
                window = inputs_in_window(url, start, end)
                if window and all(pk in observer.done_input for pk in window):
                    break
                time.sleep(0.5)
            published = [s for s in source.updates if start <= s <= end]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        observer.close()
    result.update(analyse(url, observer, published=published, start=start, end=end, models=options.models))
    result["errors"] = sum(
        1
        for worker in WORKERS
        for line in (workdir / f"{mode}-{worker}.log").read_text().splitlines()
        if " ERROR " in line or line.startswith("Traceback")
    )
    admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return result


def check_alive(processes: dict[str, subprocess.Popen], workdir: Path, mode: str) -> None:
    for worker, process in processes.items():
        if process.poll() is not None:
            tail = "\n".join((workdir / f"{mode}-{worker}.log").read_text().splitlines()[-30:])
            raise SystemExit(f"{mode}: {worker} exited with {process.returncode}:\n{tail}")


def inputs_in_window(url: str, start: float, end: float) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id FROM predictions_input WHERE scheduled_for BETWEEN %s AND %s",
            [datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)],
        ).fetchall()
    return [pk for (pk,) in rows]


def analyse(url: str, observer: CommitObserver, *, published: list[float], start: float, end: float, models: int):
    tape = sorted(observer.tape)
    newest, running = [], -math.inf
    for _commit, carried in tape:
        running = max(running, carried)
        newest.append(running)
    a = []
    for sent in published:
        i = bisect.bisect_left(newest, sent - 1e-6)  # the first COMMIT after which the tape holds it (or newer)
        if i < len(tape):
            a.append(tape[i][0] - sent)
    with psycopg.connect(url) as conn:
        inputs = conn.execute(
            """
            SELECT i.id, i.scheduled_for, i.received_at, i.as_of, i.resolvable_at, i.status,
                   (i.raw_data -> 'records' -> -1 ->> 'conf')::float,
                   count(p.id), count(p.id) FILTER (WHERE p.status IN ('PENDING', 'SCORED'))
            FROM predictions_input i LEFT JOIN predictions_prediction p ON p.input_id = i.id
            WHERE i.scheduled_for BETWEEN %s AND %s
            GROUP BY i.id ORDER BY i.scheduled_for
            """,
            [datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)],
        ).fetchall()
        server = conn.execute("SHOW server_version").fetchone()[0]
    figures = {key: [] for key in ("b_total", "b_delay", "b_work", "c_sent", "c_as_of", "d", "d_data", "d_work")}
    answered, unresolved = [], 0
    for pk, slot, received, as_of, resolvable, status, newest_sent, rows, ok in inputs:
        answered.append((rows, ok))
        committed = observer.new_input.get(pk)
        figures["b_delay"].append(received.timestamp() - slot.timestamp())
        if committed is not None:
            figures["b_total"].append(committed - slot.timestamp())
            figures["b_work"].append(committed - received.timestamp())
        if newest_sent is not None:
            figures["c_sent"].append(received.timestamp() - newest_sent)
        if as_of is not None:
            figures["c_as_of"].append(received.timestamp() - as_of.timestamp())
        if status == "RESOLVED" and pk in observer.done_input:
            figures["d"].append(observer.done_input[pk] - resolvable.timestamp())
            i = bisect.bisect_left(newest, resolvable.timestamp())  # publish_time >= resolvable_at
            if i < len(tape):
                figures["d_data"].append(tape[i][0] - resolvable.timestamp())
                figures["d_work"].append(observer.done_input[pk] - tape[i][0])
        else:
            unresolved += 1
    slots = int(end) - int(start)
    return {
        "a": a,
        "published": len(published),
        "unmatched": len(published) - len(a),
        **figures,
        "inputs": len(inputs),
        "slots": slots,
        "unresolved": unresolved,
        "predictions": answered,
        "models": models,
        "server": server,
    }


# --- report -------------------------------------------------------------------------------------

ROWS = [
    ("a", "(a) source publish -> record committed", "p50 <= 100"),
    ("b_total", "(b) slot -> all predictions committed", ""),
    ("b_delay", "(b) scheduling delay: slot -> cycle start", "p50 <= 5, p99 <= 50"),
    ("b_work", "(b) cycle work: cycle start -> committed", ""),
    ("c_sent", "(c) newest record age at the read (send time)", f"p50 <= {SOURCE_INTERVAL * 1000 + 50:.0f}"),
    ("c_as_of", "(c) newest record age by Input.as_of (whole s)", ""),
    ("d", "(d) resolvable_at -> score committed", "p50 <= 100"),
    ("d_data", "(d) data: resolvable_at -> its record committed", ""),
    ("d_work", "(d) scorer: that record -> score committed", ""),
]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f}"


def report(results: list[dict], options) -> None:
    first = results[0]
    print(
        f"e2e latency: PostgreSQL {first['server']}, 1 s config, {options.models} local models, horizon "
        f"{options.horizon} s, source {1 / SOURCE_INTERVAL:.0f} updates/s (Hermes-like SSE on loopback), "
        f"{options.seconds:.0f} s measured per mode; {os.cpu_count()} CPUs"
    )
    for r in results:
        print(f"  {MODES[r['mode']]['title']}")
        print(f"    load average before {r['load_before']}, at the end of the window {r['load_during']}")
    header = f"{'figure (ms)':<50}" + "".join(f" | {r['mode'] + ' n':>9} {'p50':>8} {'p99':>8}" for r in results)
    if len(results) == 2:
        header += f" | {'p50 ratio':>9}"
    header += " | target (stream)"
    print(header)
    print("-" * len(header))
    for key, label, target in ROWS:
        line = f"{label:<50}"
        for r in results:
            line += f" | {len(r[key]):>9} {ms(pct(r[key], 50)):>8} {ms(pct(r[key], 99)):>8}"
        if len(results) == 2:
            p50s = [pct(r[key], 50) for r in results]
            ratio = f"{p50s[1] / p50s[0]:.1f}x" if None not in p50s and p50s[0] > 0 else "n/a"
            line += f" | {ratio:>9}"
        print(line + f" | {target}")
    for r in results:
        rows = [n for n, _ok in r["predictions"]]
        ok = sum(k for _n, k in r["predictions"])
        print(
            f"{r['mode']}: {r['inputs']} Inputs for {r['slots']} slots in the window, predictions per Input "
            f"{min(rows, default=0)}-{max(rows, default=0)} ({ok} answered), {r['unresolved']} Input(s) not scored "
            f"by the end; {r['published']} updates published, {r['unmatched']} never on the tape by the end; "
            f"{r['errors']} ERROR line(s) in the worker logs"
        )
    print(
        "p50 ratio = poll / stream. (b) work = the cycle's own time (claim, tape window, tick unless event ticks "
        "sent it already, predict to every model, validation, one write); (c) by as_of counts whole seconds "
        "(Hermes' publish_time)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="measured window per mode (default 60)")
    parser.add_argument("--models", type=int, default=100, help="local models (default 100)")
    parser.add_argument("--horizon", type=int, default=5, help="the config's horizon in seconds (default 5)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument(
        "--stream-event-ticks",
        choices=["auto", "on", "off"],
        default="auto",
        help="EVENT_TICKS of the stream mode (default auto: on with local models)",
    )
    parser.add_argument("--warmup-timeout", type=float, default=180, help="seconds to wait for the first Input")
    parser.add_argument(
        "--database-prefix",
        default=f"coord_e2e_bench_{os.getpid()}",
        help="names of the throwaway databases: <prefix>_tpl, <prefix>_<mode>",
    )
    options = parser.parse_args()
    MODES["stream"]["env"]["EVENT_TICKS"] = options.stream_event_ticks
    MODES["stream"]["title"] = MODES["stream"]["title"].replace(
        "EVENT_TICKS=auto", f"EVENT_TICKS={options.stream_event_ticks}"
    )
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if not base.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench/e2e_latency.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    prefix = options.database_prefix
    workdir = Path(tempfile.mkdtemp(prefix="e2e-latency-"))
    try:
        (workdir / "configs.json").write_text(
            json.dumps(
                [
                    {
                        "scope_key": "BTC-1s-bench",
                        "scope_template": {"source": "pyth", "subject": "BTC", "kind": "tick", "granularity": "1s"},
                        "interval_seconds": 1,
                        "horizon_seconds": options.horizon,
                    }
                ]
            )
        )
        (workdir / "no-configs.json").write_text("[]")
        shutil.copy(ROOT / "examples" / "cruncher.py", workdir / "cruncher.py")  # MODELS_DIR's parent
        for i in range(options.models):
            (workdir / "models" / f"bench-{i:04d}").mkdir(parents=True)
            (workdir / "models" / f"bench-{i:04d}" / "main.py").write_text(MODEL_CODE)
        admin(base, f'DROP DATABASE IF EXISTS "{prefix}_tpl"')
        admin(base, f'CREATE DATABASE "{prefix}_tpl"')
        template = database_url(base, f"{prefix}_tpl")
        manage(
            ["migrate", "-v", "0"], worker_env(template, {"PREDICTION_CONFIGS_PATH": str(workdir / "no-configs.json")})
        )
        with psycopg.connect(template, autocommit=True) as conn:
            conn.execute(TRIGGERS_SQL)
        results = [run_mode(mode, base=base, prefix=prefix, options=options, workdir=workdir) for mode in options.modes]
        report(results, options)
    finally:
        for name in [f"{prefix}_tpl", *(f"{prefix}_{mode}" for mode in MODES)]:
            admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
