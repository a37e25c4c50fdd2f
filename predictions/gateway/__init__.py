"""The model gateway (DESIGN.md §7): one interface, a `local` and a `remote` backend."""

from django.conf import settings

from predictions.gateway.base import (
    CallStatus,
    ModelCallResult,
    ModelGateway,
    ModelIdentity,
)

__all__ = ["CallStatus", "ModelCallResult", "ModelGateway", "ModelIdentity", "build_gateway"]


def build_gateway(kind: str | None = None) -> ModelGateway:
    """The gateway named by MODEL_GATEWAY (`local` or `remote`), configured from settings."""
    kind = kind or settings.MODEL_GATEWAY
    if kind == "local":
        from predictions.gateway.local import LocalModelGateway

        return LocalModelGateway(
            models_dir=settings.MODELS_DIR,
            base_classname=settings.MODEL_BASE_CLASSNAME,
            timeout=settings.MODEL_CALL_TIMEOUT_SECONDS,
            max_consecutive_kills=settings.LOCAL_MODEL_MAX_CONSECUTIVE_KILLS,
        )
    if kind == "remote":
        from predictions.gateway.remote import RemoteModelGateway, load_credentials

        return RemoteModelGateway(
            crunch_id=settings.CRUNCH_ID,
            host=settings.MODEL_RUNNER_NODE_HOST,
            port=settings.MODEL_RUNNER_NODE_PORT,
            base_classname=settings.MODEL_BASE_CLASSNAME,
            timeout=settings.MODEL_CALL_TIMEOUT_SECONDS,
            report_failure=settings.MODEL_RUNNER_REPORT_FAILURE,
            max_consecutive_failures=settings.MODEL_RUNNER_MAX_CONSECUTIVE_FAILURES,
            max_consecutive_timeouts=settings.MODEL_RUNNER_MAX_CONSECUTIVE_TIMEOUTS,
            credentials=load_credentials(
                secure_cert_dir=settings.SECURE_CERT_DIR, gateway_cert_dir=settings.GATEWAY_CERT_DIR
            ),
        )
    raise ValueError(f"MODEL_GATEWAY={kind!r}: expected 'local' or 'remote'")
