"""Generate a competition workspace: the public challenge package and the operator's node config.

    <workspace>/
      SKILL.md                 guidance for coding agents (what to edit, what to leave alone)
      process-log.jsonl        one audit line per generated file
      crunch-<slug>/           the challenge package participants install
      crunch-node-<slug>/      .env, contract module, schedules, compose override, runbook

Everything is rendered in memory and validated first, then written into a staging folder that is
renamed into place, so a refused or failed run leaves the workspace as it was.
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from coordinator_site.contract import SLOT_PARAMETERS, STARTER_CONTRACT
from coordinator_site.scaffold.spec import (
    CHALLENGE_PREFIX,
    DEFAULT_CALLABLE,
    Pack,
    ScaffoldError,
    WorkspaceConfig,
    load_spec,
    resolve_config,
)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 40
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
PROCESS_LOG = "process-log.jsonl"
GENERATOR = "coordinator-node init_workspace"

# What the challenge template defines, so a pack or spec naming "challenge:<module>:<attr>" is
# checked before anything is written.
CHALLENGE_EXPORTS = {
    "inference:build_inference_input",
    "inference:build_predict_call",
    "validation:validate_output",
    "scoring:brier_score",
    "scoring:log_loss_score",
}


@dataclass(frozen=True)
class WorkspaceNames:
    slug: str
    snake: str
    package: str  # crunch_<snake>: the importable challenge package
    dist_name: str  # crunch-<slug>: the challenge folder and distribution name
    node_dir: str  # crunch-node-<slug>: the operator's folder
    node_package: str  # crunch_node_<snake>: holds the contract module


@dataclass(frozen=True)
class GeneratedWorkspace:
    workspace: Path
    challenge_dir: Path
    node_dir: Path
    files: list[str]  # paths relative to the workspace, in write order
    env: dict[str, str]  # the generated .env as a dict


def validate_slug(slug: str) -> WorkspaceNames:
    """Names derived from a slug; raises ScaffoldError for anything but lowercase-hyphen slugs."""
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or not 2 <= len(slug) <= SLUG_MAX_LENGTH:
        raise ScaffoldError(
            f"invalid slug {slug!r}: use {2}-{SLUG_MAX_LENGTH} lowercase letters, digits and single hyphens, "
            "starting with a letter (e.g. 'btc-direction')"
        )
    snake = slug.replace("-", "_")
    return WorkspaceNames(
        slug=slug,
        snake=snake,
        package=f"crunch_{snake}",
        dist_name=f"crunch-{slug}",
        node_dir=f"crunch-node-{slug}",
        node_package=f"crunch_node_{snake}",
    )


def callable_path(value: str, *, slot: str, names: WorkspaceNames) -> str | None:
    """The `module:attr` a pack/spec callable value stands for (None: the node has no default yet)."""
    if value == DEFAULT_CALLABLE:
        return STARTER_CONTRACT.callables.get(slot)
    if value.startswith(CHALLENGE_PREFIX):
        export = value.removeprefix(CHALLENGE_PREFIX)
        if export not in CHALLENGE_EXPORTS:
            raise ScaffoldError(
                f"{slot}={value!r}: the challenge package defines no {export!r}; "
                f"available: {', '.join(sorted(CHALLENGE_EXPORTS))}"
            )
        module, _, attr = export.partition(":")
        return f"{names.package}.{module}:{attr}"
    return value


def init_workspace(
    *,
    slug: str,
    output: str | Path | None = None,
    pack: str | None = None,
    spec_path: str | Path | None = None,
    force: bool = False,
) -> GeneratedWorkspace:
    """Validate everything, render every file, then write the workspace (or nothing at all)."""
    names = validate_slug(slug)
    chosen_pack, config = resolve_config(pack=pack, spec_path=spec_path)
    workspace = Path(output).expanduser().resolve() if output else (Path.cwd() / "workspaces" / slug).resolve()
    if workspace.exists() and not workspace.is_dir():
        raise ScaffoldError(f"output {workspace} exists and is not a directory")
    targets = [workspace / names.dist_name, workspace / names.node_dir, workspace / "SKILL.md"]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise ScaffoldError(f"refusing to overwrite {', '.join(existing)} (use --force to replace)")

    spec_feed = (load_spec(spec_path).get("feed") or {}) if spec_path else {}
    offline = "source" not in spec_feed  # a spec that names its feed source gets it as is
    files = render_workspace(names=names, pack=chosen_pack, config=config, workspace=workspace, offline=offline)
    _write(workspace=workspace, names=names, files=files, force=force)
    _append_process_log(
        workspace, names=names, pack=chosen_pack, spec_path=spec_path, files=files, forced=bool(existing)
    )
    env_text = files[f"{names.node_dir}/.env"]
    return GeneratedWorkspace(
        workspace=workspace,
        challenge_dir=workspace / names.dist_name,
        node_dir=workspace / names.node_dir,
        files=list(files),
        env=parse_env(env_text),
    )


def render_workspace(
    *, names: WorkspaceNames, pack: Pack, config: WorkspaceConfig, workspace: Path, offline: bool = True
) -> dict[str, str]:
    """Every generated file, `{relative path: content}`, rendered in memory.

    `offline`: the node starts on the synthetic feed (no network, no key) and `.env` shows the
    pack's live feed as the one-line switch; False keeps the configured feed (a spec that names one).
    """
    context = _context(names=names, pack=pack, config=config, workspace=workspace, offline=offline)
    files: dict[str, str] = {}
    parts = [("workspace", ""), ("challenge", names.dist_name), ("node", names.node_dir)]
    if config.tournament is not None:  # the tabular examples, their tests and a sample round
        parts += [("tournament/challenge", names.dist_name), ("tournament/node", names.node_dir)]
    for part, folder in parts:
        root = TEMPLATES_DIR / part
        for template in sorted(root.rglob("*.tmpl")):
            relative = template.relative_to(root).as_posix().removesuffix(".tmpl")
            relative = relative.replace("__package__", names.package).replace("__node_package__", names.node_package)
            relative = re.sub(r"(^|/)dot_", r"\1.", relative)
            target = f"{folder}/{relative}" if folder else relative
            files[target] = render(template.read_text(encoding="utf-8"), context, source=template)
    files[f"{names.node_dir}/scheduled_prediction_configs.json"] = prediction_configs_json(config)
    return files


def render(text: str, context: dict[str, str], *, source: Path | str = "<template>") -> str:
    """Replace `{{ name }}` placeholders; an unknown name is a template bug and raises."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in context:
            raise KeyError(f"{source}: unknown placeholder {name!r}")
        return context[name]

    return PLACEHOLDER_RE.sub(substitute, text)


def prediction_configs_json(config: WorkspaceConfig) -> str:
    """`scheduled_prediction_configs.json`: one entry per schedule, keyed by scope_key."""
    entries = [
        {
            "scope_key": entry.scope_key,
            "scope_template": {"subject": entry.subject, "step_seconds": entry.step_seconds},
            "interval_seconds": entry.interval_seconds,
            "horizon_seconds": entry.horizon_seconds,
            "active": entry.active,
            "order": entry.order,
        }
        for entry in config.schedule
    ]
    return json.dumps(entries, indent=2) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """The KEY=value lines of a generated `.env` (comments and blanks skipped, quotes removed)."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def _context(
    *, names: WorkspaceNames, pack: Pack, config: WorkspaceConfig, workspace: Path, offline: bool = True
) -> dict[str, str]:
    display_name = config.name or names.slug.replace("-", " ").title()
    if re.search(r"[\"'$`\\\n]", display_name):
        raise ScaffoldError(f"name {display_name!r}: quotes, '$', '`', backslashes and newlines are not allowed")
    paths = {slot: callable_path(value, slot=slot, names=names) for slot, value in config.callables.items()}
    overrides = {slot: path for slot, path in paths.items() if config.callables[slot] != DEFAULT_CALLABLE}
    challenge_dir = workspace / names.dist_name
    node_dir = workspace / names.node_dir
    first = config.schedule[0]
    env_callables = []
    for slot in SLOT_PARAMETERS:
        path = paths[slot]
        origin = config.callables[slot]
        note = (
            "node default"
            if origin == DEFAULT_CALLABLE
            else ("challenge package" if origin.startswith(CHALLENGE_PREFIX) else "custom")
        )
        if path is None:
            env_callables.append(f"# {slot}: the node has no default yet; the contract's value applies")
            env_callables.append(f"{slot}=")
        else:
            env_callables.append(f"# {slot} ({note}), called as ({', '.join(SLOT_PARAMETERS[slot])})")
            env_callables.append(f"{slot}={path}")
    callables_table = "\n".join(
        f"| `{slot}` | `{paths[slot] or '(node default, not yet available)'}` | "
        f"{'challenge package' if config.callables[slot].startswith(CHALLENGE_PREFIX) else ('node default' if config.callables[slot] == DEFAULT_CALLABLE else 'custom')} |"
        for slot in SLOT_PARAMETERS
    )
    # The challenge's own scoring function (the one participants evaluate with), if it serves the slot.
    scoring_value = config.callables["SCORING_FUNCTION"]
    scoring_attr = scoring_value.rpartition(":")[2] if scoring_value.startswith(CHALLENGE_PREFIX) else ""
    return {
        "slug": names.slug,
        "package": names.package,
        "dist_name": names.dist_name,
        "node_dir": names.node_dir,
        "node_package": names.node_package,
        "display_name": display_name,
        "display_name_repr": repr(display_name),
        "description": config.description or pack.description,
        "pack": pack.name,
        "pack_description": pack.description,
        "workspace_dir": str(workspace),
        "challenge_dir": str(challenge_dir),
        "node_dir_abs": str(node_dir),
        "models_dir": str(challenge_dir / ("tournament_examples" if config.tournament else "examples")),
        "prediction_configs_path": str(node_dir / "scheduled_prediction_configs.json"),
        "pythonpath": f"{challenge_dir}{os.pathsep}{node_dir}",
        "base_class": f"{names.package}.model.ModelBaseClass",
        "subject": first.subject,
        "horizon_seconds": str(first.horizon_seconds),
        "step_seconds": str(first.step_seconds),
        "interval_seconds": str(first.interval_seconds),
        "scope_key": first.scope_key,
        "feed_source": "synthetic" if offline and config.feed.source != "synthetic" else config.feed.source,
        "live_feed": _live_feed_lines(config.feed.source) if offline and config.feed.source != "synthetic" else "",
        "secret_key": secrets.token_urlsafe(50),
        "feed_subjects": ",".join(config.feed.subjects),
        "feed_kind": config.feed.kind,
        "feed_granularity": config.feed.granularity,
        "feed_poll_seconds": _number(config.feed.poll_seconds),
        "feed_backfill_minutes": str(config.feed.backfill_minutes),
        "feed_window_size": str(config.feed.window_size),
        "checkpoint_interval_seconds": str(config.checkpoint_interval_seconds),
        "snapshot_period_seconds": str(config.snapshot_period_seconds),
        "model_call_timeout_seconds": _number(config.model_call_timeout_seconds),
        "env_callables": "\n".join(env_callables),
        "contract_callables": _python_dict(overrides),
        "callables_table": callables_table,
        "scoring_function": scoring_attr or "brier_score",
        **_tournament_context(config, challenge_dir=challenge_dir, node_dir=node_dir),
    }


def _tournament_context(config: WorkspaceConfig, *, challenge_dir: Path, node_dir: Path) -> dict[str, str]:
    """The .env lines and RUNBOOK section of a tournament workspace (empty otherwise)."""
    spec = config.tournament
    if spec is None:
        return {"tournament_env": "", "tournament_runbook": "", "tournament_method": "predict_round"}
    env = (
        "\n# --- Tournament rounds (docs/tournament.md of the node) ------------------------------\n"
        "# Each model's round method, called once per sample with the sample's features.\n"
        f"TOURNAMENT_PREDICT_METHOD={spec.predict_method}\n"
        "# Combined score = (1 - w) * in-sample mean + w * out-of-sample mean.\n"
        f"TOURNAMENT_OUT_OF_SAMPLE_WEIGHT={_number(spec.out_of_sample_weight)}\n"
        f"TOURNAMENT_INFERENCE_CHUNK={spec.inference_chunk}\n"
        "# Round files `doctor` validates (samples with sample_id, features, part).\n"
        f"TOURNAMENT_ROUNDS_DIR={node_dir / 'rounds'}\n"
    )
    runbook = (
        "\n## Tournament rounds\n\n"
        "```bash\n"
        f"python manage.py tournament open {node_dir / 'rounds' / 'sample_round.json'}   # OPEN; run_predict asks the models\n"
        "python manage.py tournament status sample-round                   # INFERENCE_DONE when every model answered\n"
        f"python manage.py tournament upload-truth sample-round {node_dir / 'rounds' / 'sample_truth.csv'}\n"
        "python manage.py tournament status sample-round                   # SCORED: results per part and combined\n"
        "```\n\n"
        "Without a running run_predict, `python manage.py tournament infer <round_id>` asks the models at once. "
        "Re-uploading truth before scoring replaces it; after scoring, `tournament rescore <round_id> --reason ...`.\n"
    )
    return {"tournament_env": env, "tournament_runbook": runbook, "tournament_method": spec.predict_method}


LIVE_FEED_NOTES = {
    "pyth": "# Live: FEED_SOURCE=pyth and PYTH_API_KEY=<your Hermes key> (Hermes requires one; run_node and\n"
    "# doctor refuse pyth without it).",
    "binance": "# Live: FEED_SOURCE=binance (public klines, no key; network access needed).",
    "csv": "# Replay: FEED_SOURCE=csv and FEED_CSV_PATH=<file of candles or ticks>.",
}


def _live_feed_lines(source: str) -> str:
    """The comment that says how to switch the offline default to the competition's own feed."""
    note = LIVE_FEED_NOTES.get(source, f"# Live: FEED_SOURCE={source}.")
    return (
        "# Offline by default: a synthetic random walk (no network, no key), so the node starts as is.\n"
        f"# This competition's feed is {source}; switch when ready, then run `manage.py doctor`:\n{note}\n"
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _python_dict(mapping: dict[str, str | None]) -> str:
    if not mapping:
        return "{}"
    lines = [f"    {json.dumps(slot)}: {json.dumps(path)}," for slot, path in mapping.items()]
    return "{\n" + "\n".join(lines) + "\n}"


def _write(*, workspace: Path, names: WorkspaceNames, files: dict[str, str], force: bool) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".init-{names.slug}-", dir=workspace))
    try:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        if force:
            for name in (names.dist_name, names.node_dir):
                if (workspace / name).is_dir():
                    shutil.rmtree(workspace / name)
                elif (workspace / name).exists():
                    (workspace / name).unlink()
        for entry in staging.iterdir():
            os.replace(entry, workspace / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _append_process_log(
    workspace: Path, *, names: WorkspaceNames, pack: Pack, spec_path, files: dict[str, str], forced: bool
) -> None:
    now = datetime.now(UTC).isoformat()
    with (workspace / PROCESS_LOG).open("a", encoding="utf-8") as log:
        for relative, content in files.items():
            data = content.encode("utf-8")
            line = {
                "ts": now,
                "event": "file_generated",
                "generator": GENERATOR,
                "slug": names.slug,
                "pack": pack.name,
                "spec": str(spec_path) if spec_path else None,
                "path": relative,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "replaced": forced,
            }
            log.write(json.dumps(line, sort_keys=True) + "\n")
