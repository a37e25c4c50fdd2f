"""`manage.py doctor`: check a node configuration before any worker starts, one line per check.

Checks: the contract, every callable slot (importable, callable with the slot's parameters: the
same resolution the system check uses), the prediction configs file, the feed settings, the
database, and the models directory. `--spec` generates the spec's workspace into a temporary
folder and checks that configuration instead of the running one.
"""

import importlib.util
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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator_site.contract import SLOT_PARAMETERS, get_callable, get_contract, import_path, resolve_slot, slot_path

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


class PredictionConfigEntry(BaseModel):
    """One entry of `scheduled_prediction_configs.json` (a JSON list of these)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    scope_key: str = Field(min_length=1, max_length=128)
    scope_template: dict[str, Any] = Field(default_factory=dict)
    interval_seconds: int = Field(ge=1)
    horizon_seconds: int = Field(ge=0)
    active: bool = True
    order: int = 0
    meta: dict[str, Any] = Field(default_factory=dict)


def run_checks() -> list[CheckResult]:
    """Every check against the current settings, in a fixed order."""
    return [
        check_contract(),
        *check_callables(),
        check_prediction_configs(),
        check_feed(),
        check_database(),
        check_models_directory(),
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
    """PREDICTION_CONFIGS_PATH is a JSON list of well-formed, uniquely keyed schedules on configured subjects."""
    name = "prediction configs"
    path = Path(settings.PREDICTION_CONFIGS_PATH)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return CheckResult(name, False, f"PREDICTION_CONFIGS_PATH={path}: cannot be read ({exc.strerror or exc})")
    except json.JSONDecodeError as exc:
        return CheckResult(name, False, f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}")
    if not isinstance(data, list) or not data:
        return CheckResult(name, False, f"{path}: expected a non-empty JSON list of schedules")
    entries = []
    for index, item in enumerate(data):
        try:
            entries.append(PredictionConfigEntry.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
                for e in exc.errors()
            )
            return CheckResult(name, False, f"{path}: entry {index}: {problems}")
    keys = [entry.scope_key for entry in entries]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        return CheckResult(name, False, f"{path}: duplicate scope_keys {duplicates}")
    for entry in entries:
        subject = entry.scope_template.get("subject")
        if subject is not None and subject not in settings.FEED_SUBJECTS:
            return CheckResult(
                name,
                False,
                f"{path}: {entry.scope_key} asks for subject {subject!r}, not in FEED_SUBJECTS {settings.FEED_SUBJECTS}",
            )
    active = sum(entry.active for entry in entries)
    return CheckResult(name, True, f"{path}: {len(entries)} schedules ({active} active): {', '.join(keys)}")


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
    if source == "csv" and not Path(settings.FEED_CSV_PATH or "").is_file():
        return CheckResult(name, False, f"FEED_SOURCE=csv but FEED_CSV_PATH={settings.FEED_CSV_PATH!r} is not a file")
    return CheckResult(name, True, f"{source} {','.join(subjects)} {settings.FEED_KIND} {settings.FEED_GRANULARITY}")


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
        return CheckResult(
            name, False, f"{vendor} reachable but {len(pending)} migrations unapplied (run manage.py migrate)"
        )
    return CheckResult(name, True, f"{vendor} reachable, migrations applied")


def check_models_directory() -> CheckResult:
    """MODELS_DIR holds model folders whose `main.py` defines a loadable subclass of MODEL_BASE_CLASSNAME."""
    name = "models directory"
    directory = Path(settings.MODELS_DIR)
    if not directory.is_dir():
        return CheckResult(name, False, f"MODELS_DIR={directory} is not a directory")
    try:
        base = import_path(settings.MODEL_BASE_CLASSNAME, variable="MODEL_BASE_CLASSNAME")
    except Exception as exc:
        return CheckResult(name, False, _error(exc))
    if not isinstance(base, type):
        return CheckResult(name, False, f"MODEL_BASE_CLASSNAME={settings.MODEL_BASE_CLASSNAME!r} is not a class")
    folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    folders = [folder for folder in folders if (folder / "main.py").is_file()]
    if not folders:
        return CheckResult(
            name, False, f"MODELS_DIR={directory}: no model folders (one sub-folder per model with main.py)"
        )
    loaded = []
    for folder in folders:
        try:
            model_class = _load_model_class(folder, base)
            model_class()
        except Exception as exc:
            return CheckResult(name, False, f"{directory}: model {folder.name!r}: {_error(exc)}")
        loaded.append(f"{folder.name} ({model_class.__name__})")
    return CheckResult(name, True, f"{directory}: {len(loaded)} models load: {', '.join(loaded)}")


def _load_model_class(folder: Path, base: type) -> type:
    """The model class of one folder, imported in a namespace of its own (as the model node does)."""
    base_package = base.__module__.partition(".")[0]
    module_name = f"_doctor_model_{folder.name}_main"
    spec = importlib.util.spec_from_file_location(module_name, folder / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, base)
            and obj is not base
            and obj.__module__.partition(".")[0] != base_package
        ):
            return obj
    raise LookupError(f"main.py defines no subclass of {settings.MODEL_BASE_CLASSNAME}")


def settings_for_env(env: dict[str, str]) -> dict[str, Any]:
    """The settings a node started with `env` (a generated .env) would have, for the checks above."""
    overrides: dict[str, Any] = {"CALLABLE_OVERRIDES": {slot: env.get(slot, "") for slot in SLOT_PARAMETERS}}
    for key in ("CRUNCH_CONTRACT", "MODELS_DIR", "MODEL_BASE_CLASSNAME", "PREDICTION_CONFIGS_PATH", "FEED_SOURCE"):
        if env.get(key):
            overrides[key] = env[key]
    for key in ("FEED_KIND", "FEED_GRANULARITY", "FEED_CSV_PATH"):
        if key in env:
            overrides[key] = env[key]
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
