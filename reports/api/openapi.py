"""OpenAPI schemas of the rows whose keys depend on the contract (one per aggregation window)."""

from typing import Any

from reports.api.serializers import CHART_TIME_DESCRIPTION, CHART_TIME_PATTERN, chart_time

NUMBER_OR_NULL = {"type": "number", "nullable": True}
DATE_TIME = {"type": "string", "format": "date-time"}
CHART_TIME = {"type": "string", "pattern": CHART_TIME_PATTERN, "description": CHART_TIME_DESCRIPTION}
SCORE_RANKING = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "value": NUMBER_OR_NULL,
        "direction": {"type": "string", "enum": ["asc", "desc"]},
    },
    "required": ["key", "value", "direction"],
}
WINDOW_METRICS = {
    "type": "object",
    "additionalProperties": NUMBER_OR_NULL,
    "description": "Window name -> mean score (null: no score in the window).",
}
FLATTENED = {
    "anyOf": [{"type": "number", "nullable": True}, {"type": "string"}, {"type": "object"}, {"type": "integer"}],
    "description": "Each window's value is repeated at the top level of the row under the window's name.",
}


def _array(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "object", "properties": properties, "required": required, "additionalProperties": FLATTENED},
    }


LEADERBOARD_ROWS = _array(
    {
        "created_at": DATE_TIME,
        "model_id": {"type": "string"},
        "model_name": {"type": "string"},
        "cruncher_id": {"type": "string"},
        "cruncher_name": {"type": "string"},
        "rank": {"type": "integer", "nullable": True},
        "score_metrics": WINDOW_METRICS,
        "score_ranking": SCORE_RANKING,
        "coverage": NUMBER_OR_NULL,
        "prediction_count": {"type": "integer"},
        "scored_count": {"type": "integer"},
    },
    ["model_id", "rank", "score_metrics", "score_ranking"],
)
_SERIES = {
    "model_id": {"type": "string"},
    "score_metrics": WINDOW_METRICS,
    "score_ranking": SCORE_RANKING,
    "score_count": {"type": "integer"},
    "performed_at": CHART_TIME,
}
MODEL_SERIES_ROWS = _array(_SERIES, ["model_id", "score_metrics", "score_ranking", "performed_at"])
MODEL_PARAMS_ROWS = _array(
    {
        **_SERIES,
        "scope_key": {"type": "string"},
        "scope": {"type": "object", "additionalProperties": True},
        "subject": {"type": "string"},
        "horizon": {"type": "integer", "nullable": True},
        "param": {"type": "string"},
    },
    ["model_id", "scope_key", "score_metrics", "score_ranking", "performed_at"],
)
COLUMN = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": ["MODEL", "VALUE", "USERNAME", "CHART"]},
        "property": {"type": "string"},
        "format": {"type": "string", "nullable": True},
        "displayName": {"type": "string"},
        "tooltip": {"type": "string", "nullable": True},
        "nativeConfiguration": {"type": "object", "nullable": True, "additionalProperties": True},
        "order": {"type": "integer"},
    },
}
WIDGET = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "type": {"type": "string", "enum": ["CHART", "IFRAME"]},
        "displayName": {"type": "string"},
        "tooltip": {"type": "string", "nullable": True},
        "order": {"type": "integer"},
        "endpointUrl": {"type": "string"},
        "nativeConfiguration": {"type": "object", "nullable": True, "additionalProperties": True},
    },
}
COLUMNS = {"type": "array", "items": COLUMN}
WIDGETS = {"type": "array", "items": WIDGET}
REPORT_SCHEMA = {
    "type": "object",
    "properties": {"schema_version": {"type": "string"}, "leaderboard_columns": COLUMNS, "metrics_widgets": WIDGETS},
    "required": ["schema_version", "leaderboard_columns", "metrics_widgets"],
}


def with_chart_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with `performed_at` in the chart encoding (UTC, no offset)."""
    return [{**row, "performed_at": chart_time(row["performed_at"])} for row in rows]
