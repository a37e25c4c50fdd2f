"""Remote model gateway: model-runner-client's DynamicSubclassModelConcurrentRunner.

The client is asyncio-only and its `init()` can block for minutes on one unreachable model
(MODEL_RUNNER_NOTES.md §1.4), so the gateway owns one event loop in a background thread of the
worker process: `init()` then `sync()` run there as tasks, `ready` says whether init finished,
and `call()` submits one coroutine to that loop and waits for it (never longer than the call
timeout plus a margin). Calls are serialised by one lock, so each model has at most one call
in flight from this coordinator (a node busy with a late call answers "Server busy").
"""

import asyncio
import logging
import math
import threading
from pathlib import Path
from typing import Any

from predictions.gateway.base import CallStatus, ModelCallResult, ModelIdentity

log = logging.getLogger("predictions.gateway.remote")

INIT_RETRY_SECONDS = 5.0


def identity_of(model_runner) -> ModelIdentity:
    infos = model_runner.infos or {}
    return ModelIdentity(
        model_id=str(model_runner.model_id),
        name=str(model_runner.model_name or infos.get("model_name") or ""),
        cruncher_id=str(infos.get("cruncher_id") or ""),
        cruncher_name=str(infos.get("cruncher_name") or ""),
        deployment_id=str(model_runner.deployment_id or ""),
    )


def load_credentials(*, secure_cert_dir: str, gateway_cert_dir: str) -> dict[str, Any]:
    """Credentials as crunch-node picks them: GATEWAY_CERT_DIR/key.pem, else SECURE_CERT_DIR, else none."""
    if gateway_cert_dir:
        from model_runner_client.security.gateway_credentials import GatewayCredentials

        key_path = Path(gateway_cert_dir) / "key.pem"
        return {"gateway_credentials": GatewayCredentials.from_pem(key_path.read_bytes())}
    if secure_cert_dir:
        from model_runner_client.security.credentials import SecureCredentials

        return {"secure_credentials": SecureCredentials.from_directory(secure_cert_dir)}
    return {}


def encode_arguments(args, kwargs) -> tuple[list, list]:
    """Python values -> the client's Argument/KwArgument messages (types as the node detects them)."""
    from model_runner_client.grpc.generated.commons_pb2 import Argument, KwArgument, Variant
    from model_runner_client.utils.datatype_transformer import detect_data_type, encode_data

    def variant(value):
        kind = detect_data_type(value)
        return Variant(type=kind, value=encode_data(kind, value))

    return (
        [Argument(position=i, data=variant(v)) for i, v in enumerate(args)],
        [KwArgument(keyword=k, data=variant(v)) for k, v in (kwargs or {}).items()],
    )


class RemoteModelGateway:
    """Models served by model nodes, discovered through the orchestrator's WebSocket."""

    name = "remote"

    def __init__(
        self,
        *,
        crunch_id: str,
        host: str,
        port: int,
        base_classname: str,
        timeout: float,
        report_failure: bool = False,
        max_consecutive_failures: int = 100,
        max_consecutive_timeouts: int = 100,
        credentials: dict[str, Any] | None = None,
    ) -> None:
        self.options = {
            "timeout": timeout,
            "crunch_id": crunch_id,
            "host": host,
            "port": port,
            "base_classname": base_classname,
            "report_failure": report_failure,
            "max_consecutive_failures": max_consecutive_failures,
            "max_consecutive_timeouts": max_consecutive_timeouts,
            **(credentials or {}),
        }
        self.timeout = timeout
        self.runner = None
        self.last_error: str | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the event loop thread and schedule init + sync; returns at once."""
        from model_runner_client.model_concurrent_runners import DynamicSubclassModelConcurrentRunner

        self.runner = DynamicSubclassModelConcurrentRunner(**self.options)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def run_loop() -> None:
            asyncio.set_event_loop(self._loop)
            self._lock = asyncio.Lock()
            self._tasks.append(self._loop.create_task(self._connect_then_sync()))
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run_loop, name="model-runner-client", daemon=True)
        self._thread.start()
        started.wait()

    async def _connect_then_sync(self) -> None:
        while True:
            try:
                await self.runner.init()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "model-runner-client init failed (%s); retrying in %.0fs", self.last_error, INIT_RETRY_SECONDS
                )
                await asyncio.sleep(INIT_RETRY_SECONDS)
        self.last_error = None
        self._ready.set()
        log.info("model gateway ready: %d model(s) connected", len(self.runner.model_cluster.models_run))
        await self.runner.sync()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def refresh(self) -> None:
        """Joins and leaves arrive on the orchestrator's WebSocket (the sync task)."""

    def connected_models(self) -> list[ModelIdentity]:
        if self.runner is None:
            return []
        return [identity_of(r) for r in list(self.runner.model_cluster.models_run.values())]

    def close(self) -> None:
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(timeout=5)
        except Exception:
            log.warning("model gateway did not shut down cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop = None

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        cluster = self.runner.model_cluster
        runners = [*cluster.models_run.values(), *cluster.pending_model_runs.values()]
        await asyncio.gather(*(r.close() for r in runners), return_exceptions=True)
        cluster.ws_client.listening = False
        if cluster.ws_client.websocket is not None:
            await cluster.ws_client.websocket.close()
            # The client's __del__ registers an atexit disconnect that would log to closed streams.
            cluster.ws_client.websocket = None

    # --- calls -----------------------------------------------------------------------------

    def call(
        self, method: str, args: list | tuple = (), kwargs: dict | None = None, *, timeout: float | None = None
    ) -> list[ModelCallResult]:
        """Call `method` on every connected model; one result per model the client answered for.

        `timeout`: this call's deadline per model (default: the gateway's); the client takes
        whole seconds, so it is rounded up (at least 1 s)."""
        if self._loop is None or not self.ready:
            return []
        deadline = self.timeout if timeout is None else max(1, math.ceil(timeout))
        encoded = encode_arguments(list(args), kwargs)
        future = asyncio.run_coroutine_threadsafe(self._call(method, encoded, deadline), self._loop)
        # The client bounds every model by the gRPC deadline; the margin covers health checks.
        return future.result(timeout=self.timeout + deadline + 10)

    async def _call(self, method: str, encoded: tuple[list, list], deadline: float) -> list[ModelCallResult]:
        async with self._lock:
            try:
                answers = await self.runner.call(method, encoded, timeout=deadline)
            except Exception:
                # 0.14.0 raises AttributeError for the whole call when one model hits AuthError
                # (MODEL_RUNNER_NOTES.md §1.2): nobody answered, so every model counts ABSENT.
                log.exception("model-runner-client call(%s) raised; no answers this call", method)
                return []
        return [
            ModelCallResult(
                identity=identity_of(model_runner),
                status=CallStatus(answer.status.value),
                output=answer.result,
                exec_time_us=int(answer.exec_time_us),
                detail=answer.detail,
            )
            for model_runner, answer in answers.items()
        ]
