"""In-process model gateway: participant models loaded from a folder, called in threads.

For the embedded default, the examples and tests only: it runs participant code inside the
coordinator process, so never point it at untrusted submissions.

Layout of `models_dir` (one sub-folder per model, like one model node per submission):

    <models_dir>/<folder>/main.py        the model (plus any helper modules/packages)
    <models_dir>/<folder>/model.json     optional identity: {"model_id", "name", "cruncher_id",
                                         "cruncher_name", "cruncher_index"} (defaults: the folder
                                         name, "local", no index: flagged, never paid)

Loading follows the real model node: the base class (`module.Class`) is imported on the
coordinator's path (or, failing that, from `<models_dir>` or its parent); every module of the
folder is imported and the first class that subclasses the base and is not defined in the
base's own top-level package is instantiated. Each model gets its own module namespace, so two
models may both have `main.py` and `helpers.py`. `deployment_id` is `<model_id>_<hash of the
code>`, so an edit looks like a redeploy.
"""

import collections
import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import pkgutil
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from predictions.gateway.base import (
    BAD_IMPLEMENTATION,
    DEADLINE_EXCEEDED,
    SERVER_BUSY,
    CallStatus,
    ModelCallResult,
    ModelIdentity,
    WireEncodingError,
    wire_roundtrip,
)

log = logging.getLogger("predictions.gateway.local")

KILLED_CALL = "KILLED_CALL"  # the model raised SystemExit/KeyboardInterrupt/GeneratorExit
QUARANTINED = "QUARANTINED"

IDENTITY_KEYS = {"model_id", "name", "cruncher_id", "cruncher_name", "cruncher_index"}
_load_lock = threading.Lock()  # sys.path / sys.modules juggling must not interleave


class ModelLoadError(Exception):
    """A folder that cannot become a model; `code` is BAD_IMPLEMENTATION or SETUP_FAILED."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def resolve_base_class(base_classname: str, search_dirs: list[Path]) -> type:
    """Import `module.Class`; when the module is not importable, load it from `search_dirs`."""
    module_name, _, class_name = base_classname.rpartition(".")
    if not module_name or not class_name:
        raise ModelLoadError("INVALID_ARGUMENT", f"base class {base_classname!r} is not 'module.Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        module = _load_module_from_dirs(module_name, search_dirs)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ModelLoadError("INVALID_ARGUMENT", f"module {module_name!r} has no class {class_name!r}") from None


def _load_module_from_dirs(module_name: str, search_dirs: list[Path]):
    if "." not in module_name:
        for directory in search_dirs:
            for candidate in (directory / f"{module_name}.py", directory / module_name / "__init__.py"):
                if candidate.is_file():
                    spec = importlib.util.spec_from_file_location(module_name, candidate)
                    module = importlib.util.module_from_spec(spec)
                    # Registered under its real name so `from cruncher import ModelBaseClass` in model
                    # code finds this very class.
                    sys.modules[module_name] = module
                    try:
                        spec.loader.exec_module(module)
                    except BaseException:
                        sys.modules.pop(module_name, None)
                        raise
                    return module
    raise ModelLoadError(
        "INVALID_ARGUMENT",
        f"cannot import base class module {module_name!r} (searched {[str(d) for d in search_dirs]})",
    )


def code_files(folder: Path) -> list[Path]:
    """The files that make up a model's code (sorted; caches and hidden files excluded)."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith(".") and not n.endswith(".pyc"))
    return files


def code_signature(folder: Path) -> tuple:
    """Cheap change detector (paths, sizes, mtimes); the deployment hash is computed only on change."""
    return tuple((str(p), st.st_size, st.st_mtime_ns) for p in code_files(folder) for st in (p.stat(),))


def code_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in code_files(folder):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def read_identity(folder: Path, deployment_hash: str) -> ModelIdentity:
    meta: dict[str, Any] = {}
    manifest = folder / "model.json"
    if manifest.is_file():
        try:
            meta = json.loads(manifest.read_text())
        except ValueError as exc:
            raise ModelLoadError("SETUP_FAILED", f"{manifest}: invalid JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise ModelLoadError("SETUP_FAILED", f"{manifest}: expected a JSON object")
        unknown = set(meta) - IDENTITY_KEYS
        if unknown:
            raise ModelLoadError(
                "SETUP_FAILED", f"{manifest}: unknown keys {sorted(unknown)}; known: {sorted(IDENTITY_KEYS)}"
            )
    model_id = str(meta.get("model_id") or folder.name)
    cruncher_index = meta.get("cruncher_index")
    if cruncher_index is not None and (
        isinstance(cruncher_index, bool) or not isinstance(cruncher_index, int) or not 0 <= cruncher_index < 2**31
    ):
        raise ModelLoadError(
            "SETUP_FAILED", f"{manifest}: cruncher_index must be a whole number >= 0 or null, got {cruncher_index!r}"
        )
    return ModelIdentity(
        model_id=model_id,
        name=str(meta.get("name") or folder.name),
        cruncher_id=str(meta.get("cruncher_id") or "local"),
        cruncher_name=str(meta.get("cruncher_name") or "local"),
        deployment_id=f"{model_id}_{deployment_hash}",
        cruncher_index=cruncher_index,
    )


def load_model_instance(folder: Path, base_class: type, namespace: str, instance_args=(), instance_kwargs=None):
    """Import every module of `folder` in its own namespace and instantiate the model class."""
    base_top = base_class.__module__.split(".")[0]
    with _load_lock:
        modules = _import_folder(folder, namespace, skip={base_top})
    for module in modules:
        for value in list(vars(module).values()):
            if (
                inspect.isclass(value)
                and value is not base_class
                and issubclass(value, base_class)
                and value.__module__.split(".")[0] != base_top
            ):
                try:
                    return value(*instance_args, **(instance_kwargs or {}))
                except Exception as exc:
                    raise ModelLoadError("SETUP_FAILED", f"{value.__name__}(): {type(exc).__name__}: {exc}") from exc
    raise ModelLoadError(
        BAD_IMPLEMENTATION, f"no subclass of {base_class.__module__}.{base_class.__qualname__} in {folder}"
    )


def _import_folder(folder: Path, namespace: str, skip: set[str]) -> list:
    """Import the folder's modules as top-level names (so `import helpers` works inside the
    model), then move them out of `sys.modules` under `<namespace>.<name>` so the next model's
    `main` does not collide. Must run under `_load_lock`."""
    top_names = {m.name for m in pkgutil.iter_modules([str(folder)])} - skip
    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in top_names}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ in model folders; no stale bytecode on quick edits
    imported = []
    try:
        importlib.invalidate_caches()
        for info in pkgutil.walk_packages([str(folder)]):
            if info.name.split(".")[0] in skip:
                continue
            try:
                imported.append(importlib.import_module(info.name))
            except Exception as exc:
                raise ModelLoadError("SETUP_FAILED", f"importing {info.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.dont_write_bytecode = dont_write
        sys.path.remove(str(folder))
        loaded = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in top_names}
        for name, mod in loaded.items():
            del sys.modules[name]
            sys.modules[f"{namespace}.{name}"] = mod
        sys.modules.update(saved)
    return imported


@dataclass
class LoadedModel:
    identity: ModelIdentity
    folder: Path
    signature: tuple
    instance: Any
    # Held while a call of this model runs (taken without waiting, released when its thread ends):
    # a model is never called twice at once, e.g. ticked while its predict() runs.
    busy: threading.Lock = field(default_factory=threading.Lock)
    consecutive_kills: int = 0
    signatures: dict[str, inspect.Signature | None] = field(default_factory=dict)


class LocalModelGateway:
    """Models from a folder, in this process; each call fans out to every model in threads."""

    name = "local"

    def __init__(
        self,
        *,
        models_dir: str | Path,
        base_classname: str,
        timeout: float,
        rescan_seconds: float = 5.0,
        max_consecutive_kills: int = 3,
        instance_args: tuple = (),
        instance_kwargs: dict | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.base_classname = base_classname
        self.timeout = timeout
        self.rescan_seconds = rescan_seconds
        self.max_consecutive_kills = max_consecutive_kills
        self.instance_args = instance_args
        self.instance_kwargs = instance_kwargs or {}
        self.models: dict[str, LoadedModel] = {}  # by folder name
        # folder name -> (code signature, why it did not join); retried when the code changes
        self.load_errors: dict[str, tuple[tuple, str]] = {}
        self._pool = _CallPool()
        self._last_scan = float("-inf")
        self._base_class: type | None = None
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self.refresh(force=True)

    @property
    def ready(self) -> bool:
        return self._started

    def close(self) -> None:
        # Threads of models still running past their timeout are daemons and are not waited for.
        self._pool.close()

    def connected_models(self) -> list[ModelIdentity]:
        return [m.identity for m in self.models.values()]

    def refresh(self, *, force: bool = False) -> None:
        """Rescan the folder (at most every `rescan_seconds`): join new, drop removed, reload edited."""
        now = time.monotonic()
        if not force and now - self._last_scan < self.rescan_seconds:
            return
        self._last_scan = now
        if self._base_class is None:
            self._base_class = resolve_base_class(self.base_classname, [self.models_dir, self.models_dir.parent])
        folders = (
            {p.name: p for p in self.models_dir.iterdir() if p.is_dir() and (p / "main.py").is_file()}
            if self.models_dir.is_dir()
            else {}
        )
        for gone in set(self.models) - set(folders):
            log.info("model %s left (folder removed)", self.models.pop(gone).identity.model_id)
        for gone in set(self.load_errors) - set(folders):
            del self.load_errors[gone]
        for name, folder in sorted(folders.items()):
            signature = code_signature(folder)
            current = self.models.get(name)
            if current is not None and current.signature == signature:
                continue
            if current is None and self.load_errors.get(name, (None,))[0] == signature:
                continue  # still broken, unchanged
            self._load(name, folder, signature)

    def _load(self, name: str, folder: Path, signature: tuple) -> None:
        try:
            identity = read_identity(folder, code_hash(folder))
            namespace = f"_crunch_models.{name}.{identity.deployment_id}"
            instance = load_model_instance(
                folder, self._base_class, namespace, self.instance_args, self.instance_kwargs
            )
        except ModelLoadError as exc:
            self.models.pop(name, None)
            self.load_errors[name] = (signature, str(exc))
            log.warning("model folder %s did not join: %s", folder, exc)
            return
        self.load_errors.pop(name, None)
        self.models[name] = LoadedModel(identity=identity, folder=folder, signature=signature, instance=instance)
        log.info("model %s joined (deployment %s)", identity.model_id, identity.deployment_id)

    # --- calls -----------------------------------------------------------------------------

    def call(
        self, method: str, args: list | tuple = (), kwargs: dict | None = None, *, timeout: float | None = None
    ) -> list[ModelCallResult]:
        """Call every loaded model at once; wait at most `timeout` seconds (default: the gateway's)
        for all of them.

        Arguments cross the same encoding as the wire once per call (models share the decoded
        copy: they must not mutate it). A model still running after its deadline is TIMEOUT
        ("DEADLINE_EXCEEDED") and, until its thread ends, every later call answers TIMEOUT
        ("Server busy"), as the model node does: each model's `busy` lock is taken without waiting
        before its call is queued, so two calls of one model never overlap, whoever makes them.
        """
        args = wire_roundtrip(list(args))
        kwargs = wire_roundtrip(dict(kwargs or {}))
        models = list(self.models.values())
        results: list[ModelCallResult | None] = [None] * len(models)
        tasks = []
        for index, model in enumerate(models):
            func = getattr(model.instance, method, None)
            if not callable(func):
                results[index] = ModelCallResult(model.identity, CallStatus.FAILED, detail=BAD_IMPLEMENTATION)
                continue
            if not model.busy.acquire(blocking=False):  # released by the pool thread when the call ends
                results[index] = ModelCallResult(model.identity, CallStatus.TIMEOUT, detail=SERVER_BUSY)
                continue
            tasks.append((index, model, func, self._accepted_kwargs(model, method, func, len(args), kwargs)))
        started = time.perf_counter()
        batch = self._pool.dispatch(tasks, args)
        batch.done.wait(self.timeout if timeout is None else timeout)
        with batch.lock:
            batch.abandoned = True
            outcomes = dict(batch.outcomes)
        for index, model, _func, _kwargs in tasks:
            outcome = outcomes.get(index)
            if outcome is None:
                elapsed_us = int((time.perf_counter() - started) * 1_000_000)
                results[index] = ModelCallResult(
                    model.identity, CallStatus.TIMEOUT, exec_time_us=elapsed_us, detail=DEADLINE_EXCEEDED
                )
            else:
                status, output, exec_time_us, detail, killed = outcome
                results[index] = ModelCallResult(model.identity, status, output, exec_time_us, detail)
                model.consecutive_kills = model.consecutive_kills + 1 if killed else 0
                if killed and model.consecutive_kills >= self.max_consecutive_kills:
                    self._quarantine(model, detail)
        return results

    def _quarantine(self, model: LoadedModel, detail: str | None) -> None:
        """Like the remote client's consecutive-failure limit: the model leaves (ABSENT from now
        on) until its code changes; `load_errors` says why."""
        name = model.folder.name
        if self.models.get(name) is model:
            del self.models[name]
            why = f"{QUARANTINED}: {model.consecutive_kills} calls in a row killed ({detail})"
            self.load_errors[name] = (model.signature, why)
            log.warning("model %s quarantined: %s", model.identity.model_id, why)

    @staticmethod
    def _accepted_kwargs(model: LoadedModel, method: str, func, n_args: int, kwargs: dict) -> dict:
        """Like the node: drop keyword arguments the method does not accept."""
        if not kwargs:
            return kwargs
        if method not in model.signatures:
            try:
                model.signatures[method] = inspect.signature(func)
            except (TypeError, ValueError):
                model.signatures[method] = None
        signature = model.signatures[method]
        if signature is None or any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            return kwargs
        names = {
            p.name
            for i, p in enumerate(signature.parameters.values())
            if i >= n_args and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        return {k: v for k, v in kwargs.items() if k in names}


class _Batch:
    """One fan-out: the calls not started yet, and the outcomes; late outcomes after the caller
    gave up are dropped."""

    def __init__(self, tasks: list, args: list) -> None:
        self.pending = collections.deque(tasks)  # popleft() is atomic: threads share it without a lock
        self.args = args
        self.remaining = len(tasks)
        self.outcomes: dict[int, tuple] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        if not tasks:
            self.done.set()

    def finish(self, index: int, outcome: tuple) -> None:
        with self.lock:
            if not self.abandoned:
                self.outcomes[index] = outcome
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()


class _CallPool:
    """Long-lived daemon threads draining the calls of a fan-out.

    A fan-out wakes at most PARALLELISM threads, and each takes calls from the batch until
    none is left: no queue item, wake-up or Future per call, which matters with hundreds of
    models per cycle. A model that overruns holds only its own thread; the others go on with
    the remaining calls. Threads still busy with an earlier fan-out (e.g. stuck in a model that
    overran its timeout) do not count as capacity: before each fan-out the pool grows so that at
    least `min(len(tasks), PARALLELISM)` threads are free.
    """

    PARALLELISM = 16

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = 0
        self.draining = 0  # threads currently working on a batch
        self.lock = threading.Lock()

    def dispatch(self, tasks: list, args: list) -> _Batch:
        batch = _Batch(tasks, args)  # each task's model.busy is held by the caller
        workers = min(len(tasks), self.PARALLELISM)
        with self.lock:
            for _ in range(max(0, self.draining + workers - self.threads)):
                threading.Thread(target=self._work, name="local-model", daemon=True).start()
                self.threads += 1
        for _ in range(workers):
            self.queue.put(batch)
        return batch

    def _work(self) -> None:
        sentinel = False
        try:
            while True:
                batch = self.queue.get()
                if batch is None:
                    sentinel = True
                    return
                with self.lock:
                    self.draining += 1
                try:
                    self._drain(batch)
                finally:
                    with self.lock:
                        self.draining -= 1
        finally:
            if not sentinel:  # died some other way: the next dispatch starts a replacement
                with self.lock:
                    self.threads = max(0, self.threads - 1)

    @staticmethod
    def _drain(batch: _Batch) -> None:
        while True:
            try:
                index, model, func, kwargs = batch.pending.popleft()
            except IndexError:
                return
            outcome = (CallStatus.FAILED, None, 0, "call did not finish", True)
            try:
                outcome = _timed_call(func, batch.args, kwargs)
            finally:
                # Whatever happened, the call is finished: the fan-out never waits for it in vain.
                model.busy.release()
                batch.finish(index, outcome)

    def close(self) -> None:
        with self.lock:
            for _ in range(self.threads):
                self.queue.put(None)
            self.threads = 0


def _timed_call(func, args, kwargs) -> tuple[CallStatus, Any, int, str | None, bool]:
    """(status, output, exec_time_us, detail, killed): `killed` when the model raised a
    BaseException that is not an Exception (SystemExit, KeyboardInterrupt, GeneratorExit),
    which is contained here to this one call."""
    started = time.perf_counter()
    try:
        value = func(*args, **kwargs)
    except Exception as exc:
        return CallStatus.FAILED, None, _us_since(started), f"{type(exc).__name__}: {exc}", False
    except BaseException as exc:  # model code must not take the gateway thread down
        return CallStatus.FAILED, None, _us_since(started), f"{KILLED_CALL}: {type(exc).__name__}: {exc}", True
    elapsed = _us_since(started)
    try:
        return CallStatus.SUCCESS, wire_roundtrip(value), elapsed, None, False
    except WireEncodingError as exc:
        # The node fails to encode the return value and answers MODEL_FAILED.
        return CallStatus.FAILED, None, elapsed, f"MODEL_FAILED: {exc}", False


def _us_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)
