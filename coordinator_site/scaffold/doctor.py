"""`manage.py doctor`: check a node configuration before any worker starts, one line per check.

Checks: the contract, every callable slot (importable, callable with the slot's parameters: the
same resolution the system check uses), the prediction configs file, the feed settings (with
run_node's own preflight: pyth needs PYTH_API_KEY), the database, the models directory, and the
system checks every command runs at start (so `ok` here means `migrate` and `run_node` start). `--spec` generates the spec's workspace into a temporary
folder and checks that configuration instead of the running one.
"""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test.utils import override_settings

from coordinator_site.contract import SLOT_PARAMETERS, get_callable, get_contract, resolve_slot, slot_path

# Used only when the feeds app has no provider registry to ask.
KNOWN_FEED_SOURCES = ("pyth", "binance", "synthetic", "csv")
FEED_KINDS = ("tick", "candle")


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL':<4}  {self.name:<36} {self.detail}"


def run_checks() -> list[CheckResult]:
    """Every check against the current settings, in a fixed order."""
    return [
        check_contract(),
        *check_callables(),
        check_prediction_configs(),
        check_feed(),
        check_database(),
        check_models_directory(),
        check_tournament(),
        check_startup(),
    ]


def check_contract() -> CheckResult:
    get_contract.cache_clear()
    try:
        contract = get_contract()
    except Exception as exc:  # a contract module may raise anything on import
        return CheckResult("contract", False, _error(exc))
    return CheckResult("contract", True, f"{settings.CRUNCH_CONTRACT} ({contract.name})")


def check_callables() -> list[CheckResult]:
    """One line per slot, resolved exactly as the node resolves it (env override, else contract)."""
    get_callable.cache_clear()
    results = []
    for slot in SLOT_PARAMETERS:
        name = f"callable {slot}"
        try:
            path, variable = slot_path(slot)
            func = resolve_slot(slot)
        except Exception as exc:
            results.append(CheckResult(name, False, _error(exc)))
            continue
        if func is None:
            results.append(CheckResult(name, False, f"no callable configured (set {slot} or the contract's default)"))
        else:
            results.append(CheckResult(name, True, f"{path} ({', '.join(SLOT_PARAMETERS[slot])}) via {variable}"))
    return results


def check_prediction_configs() -> CheckResult:
    """PREDICTION_CONFIGS_PATH parses with the predict worker's own reader, on configured subjects."""
    from predictions.configs import ConfigFileError, read_configs

    name = "prediction configs"
    path = Path(settings.PREDICTION_CONFIGS_PATH)
    try:
        entries = read_configs(path)
    except ConfigFileError as exc:
        return CheckResult(name, False, str(exc))
    except OSError as exc:
        return CheckResult(name, False, f"PREDICTION_CONFIGS_PATH={path}: cannot be read ({exc.strerror or exc})")
    if not entries:
        return CheckResult(name, False, f"{path}: expected a non-empty JSON list of schedules")
    for entry in entries:
        subject = entry.scope_template.get("subject")
        if subject is not None and subject not in settings.FEED_SUBJECTS:
            return CheckResult(
                name,
                False,
                f"{path}: {entry.scope_key} asks for subject {subject!r}, not in FEED_SUBJECTS {settings.FEED_SUBJECTS}",
            )
    active = sum(entry.active for entry in entries)
    keys = ", ".join(entry.scope_key for entry in entries)
    return CheckResult(name, True, f"{path}: {len(entries)} schedules ({active} active): {keys}")


def check_feed() -> CheckResult:
    """FEED_SOURCE names a provider the node has; kind, granularity and subjects are usable."""
    name = "feed source"
    source = settings.FEED_SOURCE
    try:
        from feeds.providers import get_provider
    except ImportError:
        get_provider = None
    if get_provider is not None:
        try:
            get_provider(source)
        except Exception as exc:
            return CheckResult(name, False, f"FEED_SOURCE={source!r}: {_error(exc)}")
    elif source not in KNOWN_FEED_SOURCES:
        return CheckResult(name, False, f"FEED_SOURCE={source!r} is not one of {', '.join(KNOWN_FEED_SOURCES)}")
    if settings.FEED_KIND not in FEED_KINDS:
        return CheckResult(name, False, f"FEED_KIND={settings.FEED_KIND!r} is not one of {', '.join(FEED_KINDS)}")
    from feeds.dims import granularity_seconds

    try:
        granularity_seconds(settings.FEED_GRANULARITY)
    except Exception as exc:
        return CheckResult(name, False, f"FEED_GRANULARITY={settings.FEED_GRANULARITY!r}: {_error(exc)}")
    subjects = [subject for subject in settings.FEED_SUBJECTS if subject.strip()]
    if not subjects:
        return CheckResult(name, False, "FEED_SUBJECTS is empty")
    from coordinator_site.preflight import feed_preflight_error

    if problem := feed_preflight_error():  # what run_node refuses to start with
        return CheckResult(name, False, problem.splitlines()[0])
    if source == "csv" and not Path(settings.FEED_CSV_PATH or "").is_file():
        return CheckResult(name, False, f"FEED_SOURCE=csv but FEED_CSV_PATH={settings.FEED_CSV_PATH!r} is not a file")
    return CheckResult(name, True, f"{source} {','.join(subjects)} {settings.FEED_KIND} {settings.FEED_GRANULARITY}")


def check_startup() -> CheckResult:
    """The system checks every command runs at start (`migrate`, `run_node`, the web server):
    the default SECRET_KEY with DEBUG off, DEBUG on public hosts, a bad SETTLEMENT_CHAINS, ..."""
    from coordinator_site.preflight import system_check_errors

    name = "start-up checks"
    try:
        # The contract and callable slots have their own lines above.
        errors = system_check_errors(skip=("coordinator.E001", "coordinator.E002"))
    except Exception as exc:  # a check that raises is a failed start too
        return CheckResult(name, False, _error(exc))
    if errors:
        return CheckResult(name, False, "; ".join(errors))
    return CheckResult(name, True, "no errors")


def check_database() -> CheckResult:
    """The database answers and every migration is applied."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    name = "database"
    vendor = connection.vendor
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        connection.close()
        return CheckResult(name, False, f"{vendor} unreachable: {_error(exc)}")
    if pending:
        # A new node's database is empty until its first `migrate` (run_node also migrates first):
        # the RUNBOOK runs doctor before migrate, so this is information, not a failure.
        return CheckResult(
            name, True, f"{vendor} reachable; {len(pending)} migrations to apply (`migrate` or run_node applies them)"
        )
    return CheckResult(name, True, f"{vendor} reachable, migrations applied")


def check_models_directory() -> CheckResult:
    """MODELS_DIR loads with the local gateway the predict worker uses: every folder joins."""
    from predictions.gateway.local import LocalModelGateway, ModelLoadError

    name = "models directory"
    directory = Path(settings.MODELS_DIR)
    if not directory.is_dir():
        return CheckResult(name, False, f"MODELS_DIR={directory} is not a directory")
    gateway = LocalModelGateway(
        models_dir=directory, base_classname=settings.MODEL_BASE_CLASSNAME, timeout=settings.MODEL_CALL_TIMEOUT_SECONDS
    )
    try:
        gateway.start()
    except (ModelLoadError, ImportError) as exc:
        return CheckResult(name, False, f"MODEL_BASE_CLASSNAME={settings.MODEL_BASE_CLASSNAME!r}: {_error(exc)}")
    finally:
        gateway.close()
    if gateway.load_errors:
        folder, (_, reason) = sorted(gateway.load_errors.items())[0]
        return CheckResult(name, False, f"{directory}: model {folder!r}: {reason}")
    if not gateway.models:
        return CheckResult(
            name, False, f"MODELS_DIR={directory}: no model folders (one sub-folder per model with main.py)"
        )
    loaded = ", ".join(f"{folder} ({m.identity.model_id})" for folder, m in sorted(gateway.models.items()))
    return CheckResult(name, True, f"{directory}: {len(gateway.models)} models load: {loaded}")


def check_tournament() -> CheckResult:
    """Tournament rounds (only when TOURNAMENT_ROUNDS_DIR is set): the weight, every round file in
    the folder (the samples `manage.py tournament open` would accept), and every model of
    MODELS_DIR answering TOURNAMENT_PREDICT_METHOD."""
    from predictions.gateway.local import LocalModelGateway, ModelLoadError
    from tournament.services import parse_samples

    name = "tournament"
    folder = settings.TOURNAMENT_ROUNDS_DIR
    if not folder:
        return CheckResult(name, True, "no tournament rounds folder (TOURNAMENT_ROUNDS_DIR unset)")
    weight = settings.TOURNAMENT_OUT_OF_SAMPLE_WEIGHT
    if not 0 <= weight <= 1:
        return CheckResult(name, False, f"TOURNAMENT_OUT_OF_SAMPLE_WEIGHT={weight} is not in [0, 1]")
    directory = Path(folder)
    if not directory.is_dir():
        return CheckResult(name, False, f"TOURNAMENT_ROUNDS_DIR={directory} is not a directory")
    files = sorted(directory.glob("*.json"))
    samples = 0
    for path in files:
        try:
            samples += len(parse_samples(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            problems = getattr(exc, "problems", [])
            detail = f"{exc}: {problems[0]}" if problems else str(exc)
            return CheckResult(name, False, f"{path}: {detail}")
    method = settings.TOURNAMENT_PREDICT_METHOD
    gateway = LocalModelGateway(
        models_dir=Path(settings.MODELS_DIR),
        base_classname=settings.MODEL_BASE_CLASSNAME,
        timeout=settings.MODEL_CALL_TIMEOUT_SECONDS,
    )
    try:
        gateway.start()
        missing = sorted(
            folder_name
            for folder_name, model in gateway.models.items()
            if not callable(getattr(model.instance, method, None))
        )
    except (ModelLoadError, ImportError) as exc:
        return CheckResult(name, False, f"models: {_error(exc)}")
    finally:
        gateway.close()
    if missing:
        return CheckResult(name, False, f"model(s) without {method}(features): {', '.join(missing)}")
    return CheckResult(
        name,
        True,
        f"{len(files)} round file(s), {samples} sample(s); models answer {method}(features); "
        f"out-of-sample weight {weight:g}",
    )


def settings_for_env(env: dict[str, str]) -> dict[str, Any]:
    """The settings a node started with `env` (a generated .env) would have, for the checks above."""
    overrides: dict[str, Any] = {"CALLABLE_OVERRIDES": {slot: env.get(slot, "") for slot in SLOT_PARAMETERS}}
    for key in ("CRUNCH_CONTRACT", "MODELS_DIR", "MODEL_BASE_CLASSNAME", "PREDICTION_CONFIGS_PATH", "FEED_SOURCE"):
        if env.get(key):
            overrides[key] = env[key]
    for key in ("FEED_KIND", "FEED_GRANULARITY", "FEED_CSV_PATH", "PYTH_API_KEY"):
        if key in env:
            overrides[key] = env[key]
    for key in ("TOURNAMENT_ROUNDS_DIR", "TOURNAMENT_PREDICT_METHOD"):
        if key in env:
            overrides[key] = env[key]
    if "TOURNAMENT_OUT_OF_SAMPLE_WEIGHT" in env:
        overrides["TOURNAMENT_OUT_OF_SAMPLE_WEIGHT"] = float(env["TOURNAMENT_OUT_OF_SAMPLE_WEIGHT"])
    if "SECRET_KEY" in env:  # empty means the built-in development key, as in settings.py
        overrides["SECRET_KEY"] = env["SECRET_KEY"] or settings.DEFAULT_SECRET_KEY
    if "FEED_SUBJECTS" in env:
        overrides["FEED_SUBJECTS"] = [subject for subject in env["FEED_SUBJECTS"].split(",") if subject]
    return overrides


@contextmanager
def node_configured_by(env: dict[str, str]) -> Iterator[None]:
    """Settings and sys.path as a node started with `env` would see them."""
    paths = [path for path in env.get("PYTHONPATH", "").split(os.pathsep) if path]
    sys.path[:0] = paths
    try:
        with override_settings(**settings_for_env(env)):
            yield
    finally:
        for path in paths:
            sys.path.remove(path)
        # Forget the workspace's modules so another workspace with the same names loads afresh.
        for module_name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if any(origin.startswith(path + os.sep) for path in paths):
                del sys.modules[module_name]
        get_contract.cache_clear()
        get_callable.cache_clear()


def _error(exc: BaseException) -> str:
    text = str(exc)
    # ContractError messages already name the variable and path; others need their type.
    return text if type(exc).__name__ == "ContractError" else f"{type(exc).__name__}: {text}"
