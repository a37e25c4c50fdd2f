"""The model gateway's one interface: result objects both backends return, and the protocol.

A gateway asks every connected participant model to run one method and returns one
`ModelCallResult` per model it asked. Models it did not ask (not connected) are simply not in
the list; the predict worker turns "known ACTIVE in the database but not answered" into ABSENT.
"""

import enum
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol


class CallStatus(enum.StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"


BAD_IMPLEMENTATION = "BAD_IMPLEMENTATION"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
SERVER_BUSY = "RESOURCE_EXHAUSTED: Server busy"


@dataclass(frozen=True)
class ModelIdentity:
    """Who a model is, as the orchestrator (or the local models folder) names it."""

    model_id: str
    name: str
    cruncher_id: str
    cruncher_name: str
    deployment_id: str
    # The on-chain index checkpoints pay; None when the source does not know it. It only fills
    # an empty `Model.cruncher_index` (an operator's value, set in the admin, is never replaced).
    cruncher_index: int | None = None


@dataclass(frozen=True)
class ModelCallResult:
    """One model's answer to one call. `exec_time_us` is always an integer in microseconds."""

    identity: ModelIdentity
    status: CallStatus
    output: Any = None
    exec_time_us: int = 0
    detail: str | None = None

    @property
    def model_id(self) -> str:
        return self.identity.model_id


class ModelGateway(Protocol):
    """What the predict worker needs from a backend (`local` or `remote`)."""

    name: str

    def start(self) -> None:
        """Begin connecting/loading; must not block for long (remote init runs in the background)."""

    @property
    def ready(self) -> bool:
        """True once models can be called."""

    def refresh(self) -> None:
        """Pick up joins, leaves and redeploys (local: rescan the folder; remote: the WS does it)."""

    def connected_models(self) -> list[ModelIdentity]:
        """The models currently connected, i.e. the ones `call` will ask."""

    def call(
        self, method: str, args: list | tuple = (), kwargs: dict | None = None, *, timeout: float | None = None
    ) -> list[ModelCallResult]:
        """Call `method(*args, **kwargs)` on every connected model; one result per model asked.
        `timeout`: this call's deadline (default: the gateway's MODEL_CALL_TIMEOUT_SECONDS). A model
        is never called while a call of it is still running (it answers TIMEOUT "Server busy")."""

    def close(self) -> None:
        """Stop background work and release connections."""


class WireEncodingError(ValueError):
    """A value the gRPC wire (model-runner-client's detect_data_type) cannot carry."""


def wire_roundtrip(value: Any) -> Any:
    """Send `value` through the same encoding rules as the model node, and decode it back.

    None/float/int/str pass (bool travels as INT, like the node's `detect_data_type`); dicts
    and lists travel as JSON; anything else (tuples, numpy integers, sets, objects, or a dict
    holding one) is an error, exactly as it would be behind gRPC.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):  # includes numpy.float64, which subclasses float
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, dict | list):
        try:
            return json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            raise WireEncodingError(f"Data cannot be serialized to JSON: {exc}") from exc
    raise WireEncodingError(f"Unsupported data type: {type(value)}")


def is_finite_json(value: Any) -> bool:
    """True when `value` holds no NaN/Infinity anywhere (Postgres jsonb and strict JSON refuse them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(is_finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(is_finite_json(v) for v in value)
    return True
