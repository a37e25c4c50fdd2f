"""Logging to stdout: one config for Django and gunicorn; JSON lines for log shippers (LOG_FORMAT=json)."""

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object a line. Structured fields passed as `extra={"fields": {...}}` (the workers'
    summary lines: units, found, errors, counts, timings) are top-level keys, so a log shipper
    gets the same numbers as the text line without parsing it."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update({key: value for key, value in fields.items() if key not in payload})
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def stdout_logging(*, level: str, fmt: str, loggers: dict | None = None) -> dict:
    """A dictConfig sending everything to stdout, as text or (fmt="json") one JSON object a line.

    Used by settings.LOGGING and by gunicorn.conf.py, so the web server's own lines look like
    the rest of the node's.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"()": "coordinator_site.logging.JsonFormatter"},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json" if fmt == "json" else "text",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": loggers or {},
    }
