"""Replay and what-if (docs/replay.md): re-run the workers over a past range in a scratch store.

The live store is only read. `replay_range` creates an empty scratch store (a PostgreSQL database
next to the live one, or a SQLite file), runs `manage.py replay_child` in a child process whose
default database is that store (so every service, which uses the default connection, writes
there and nowhere else) and which reads the live rows through a read-only second alias; then it
drops the store and keeps the child's report in a `ReplayReport` row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

from django.conf import settings
from django.db import connection
from django.utils import timezone

from coordinator_site.contract import SLOT_PARAMETERS
from replay.engine import ReplaySpec
from replay.models import ReplayKind, ReplayReport

# What a what-if may change: any contract slot, the missing-answer policy, the score pass, the contract itself.
OVERRIDABLE = frozenset(SLOT_PARAMETERS) | {
    "MISSING_PREDICTION_POLICY",
    "SCORE_PASS",
    "SCORE_PASS_CAP_PERCENTILE",
    "CRUNCH_CONTRACT",
}
STORED_ACTUALS_RESOLVER = "replay.resolver:stored_actuals"
CHILD_TIMEOUT_SECONDS = 6 * 3600


class ReplayError(RuntimeError):
    """The replay could not run (bad arguments, scratch store, child process failure)."""


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`SLOT=module:attr` items as a dict; raises ReplayError for an unknown name or a bad item."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not value.strip():
            raise ReplayError(f"--set {item!r}: expected NAME=VALUE")
        if name not in OVERRIDABLE:
            raise ReplayError(f"--set {name}: not overridable; one of {', '.join(sorted(OVERRIDABLE))}")
        overrides[name] = value.strip()
    return overrides


def database_url(settings_dict: dict[str, Any], *, name: str | None = None) -> str:
    """A DATABASE_URL for a connection's settings (the test database under pytest included)."""
    name = name or settings_dict["NAME"]
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{name}"
    user = quote(settings_dict.get("USER") or "postgres", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{name}"


def _admin_connection():
    import psycopg

    d = connection.settings_dict
    return psycopg.connect(
        dbname="postgres",
        user=d.get("USER") or "postgres",
        password=d.get("PASSWORD") or None,
        host=d.get("HOST") or "127.0.0.1",
        port=d.get("PORT") or 5432,
        autocommit=True,
    )


@contextmanager
def scratch_store(*, keep: bool = False) -> Iterator[str]:
    """A new, empty store of the live store's kind; its DATABASE_URL. Dropped afterwards unless `keep`."""
    live = connection.settings_dict
    if connection.vendor == "sqlite":
        path = Path(tempfile.gettempdir()) / f"replay-{uuid4().hex[:12]}.sqlite3"
        try:
            yield database_url(live, name=str(path))
        finally:
            if not keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"{live['NAME']}_replay_{uuid4().hex[:8]}"[:63]
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(live, name=name)
    finally:
        if not keep:
            with _admin_connection() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_environment(*, scratch_url: str, overrides: dict[str, str], reresolve: bool) -> dict[str, str]:
    """The child's environment: the live one (same settings, same contract), its default database
    the scratch store, the live store as the read-only source, the overrides on top."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=scratch_url,
        REPLAY_SOURCE_DATABASE_URL=database_url(connection.settings_dict),
        LEADERBOARD_HISTORY="1000000",  # keep every replayed board for the comparison
        GROUND_TRUTH_FETCH_TIMEOUT_SECONDS="0",  # re-resolving reads the copied tape: no provider is asked
        PYTHONUNBUFFERED="1",
    )
    if not reresolve and "GROUND_TRUTH_RESOLVER" not in overrides:
        env["GROUND_TRUTH_RESOLVER"] = STORED_ACTUALS_RESOLVER
    env.update(overrides)
    return env


def run_child(*, spec: ReplaySpec, env: dict[str, str]) -> dict[str, Any]:
    """Run `manage.py replay_child` and return its report (ReplayError with its output if it fails)."""
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "report.json"
        spec_path.write_text(json.dumps(spec.to_json()))
        done = subprocess.run(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "replay_child", str(spec_path), str(out_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
        )
        if done.returncode != 0 or not out_path.exists():
            raise ReplayError(f"the replay process failed (exit {done.returncode}): {done.stderr[-4000:]}")
        return json.loads(out_path.read_text())


def replay_range(
    *,
    start: datetime,
    end: datetime,
    overrides: dict[str, str] | None = None,
    reresolve: bool = False,
    keep_scratch: bool = False,
    batch: int = 500,
    actor: str = "",
    backtest_models: list[str] | None = None,
    backtest_scope: str = "",
    coalesce: bool = False,
) -> ReplayReport:
    """Replay [start, end) from stored rows in a scratch store and store the report.

    With no overrides (and without `reresolve`) this is a check: `report.identical` says whether
    scores, snapshots, retained leaderboards and settled checkpoints came out byte-identical.
    With overrides it is a what-if and the report holds the ranks and rewards it would give.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - OVERRIDABLE
    if unknown:
        raise ReplayError(f"not overridable: {sorted(unknown)}")
    if start >= end:
        raise ReplayError("--from must be before --to")
    spec = ReplaySpec.for_range(
        start=start,
        end=end,
        reresolve=reresolve,
        batch=batch,
        backtest_models=tuple(str(Path(p).resolve()) for p in backtest_models or ()),
        backtest_scope=backtest_scope,
        coalesce=coalesce,
    )
    if backtest_models:
        kind = ReplayKind.BACKTEST
    else:
        kind = ReplayKind.WHAT_IF if overrides else ReplayKind.REPLAY
    row = ReplayReport.objects.create(
        kind=kind, range_start=start, range_end=end, overrides=overrides, reresolve=reresolve, actor=actor
    )
    try:
        with scratch_store(keep=keep_scratch) as scratch_url:
            env = child_environment(scratch_url=scratch_url, overrides=overrides, reresolve=reresolve)
            report = run_child(spec=spec, env=env)
            if keep_scratch:
                report["scratch_url"] = scratch_url
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"[:10000]
        row.exit_code = 2
        row.finished_at = timezone.now()
        row.save(update_fields=["error", "exit_code", "finished_at"])
        raise
    identical = bool(report["identical"])
    row.identical = identical
    row.exit_code = 0 if identical or kind != ReplayKind.REPLAY else 1
    row.report = report
    row.summary = summarise(report)
    row.finished_at = timezone.now()
    row.save()
    return row


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The counts the admin list shows."""
    summary = {
        "identical": report["identical"],
        "scores": f"{report['scores']['differ']} of {report['scores']['compared']} differ",
        "snapshots": f"{report['snapshots']['differ']} of {report['snapshots']['compared']} differ",
        "leaderboards": f"{report['leaderboards']['differ']} of {report['leaderboards']['compared']} differ",
        "checkpoints": ", ".join(
            f"{c['period_start']}: {'identical' if c['identical'] else c['category'] + ' ' + ','.join(c['differences'])}"
            for c in report["checkpoints"]["checkpoints"]
        ),
        "rank_changes": sum(
            1
            for m in report["models"]
            for c in m["checkpoints"]
            if c["stored_rank"] != c["replayed_rank"] or c["stored_reward_pct"] != c["replayed_reward_pct"]
        ),
        "seconds": report.get("seconds"),
    }
    if "ground_truth" in report:
        summary["tape_changed"] = report["ground_truth"]["changed"]
    for model_id, result in (report.get("backtest") or {}).get("models", {}).items():
        summary.setdefault("backtest", {})[model_id] = {
            "scored": result["scored"],
            "checkpoints": [
                (c["period_start"], c["rank"], c["of"], c["estimated_reward_pct"]) for c in result["checkpoints"]
            ],
            "last_leaderboard": result["leaderboards"][-1] if result["leaderboards"] else None,
            "live_model": result["live_model"]
            and {k: v for k, v in result["live_model"].items() if k != "differing_inputs"},
        }
    return summary
