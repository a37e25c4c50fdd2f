"""The OpenAPI document of the report API: rows whose keys depend on the contract (one per
aggregation window), parameter schemas, and `ReportAutoSchema`, which states for every
operation who may call it (reads public unless REPORTS_REQUIRE_AUTH; writes need an admin key
or a staff session) and every error it can answer."""

from typing import Any

from django.conf import settings
from drf_spectacular.openapi import AutoSchema

from checkpoints.choices import CheckpointStatus
from coordinator_site.boundary.params import DATETIME_PATTERN, MAX_DB_ID
from reports.api.serializers import CHART_TIME_DESCRIPTION, CHART_TIME_PATTERN, chart_time
from reports.auth import ReportWritePermission

# --- Parameters ----------------------------------------------------------------------------------

CURSOR_FORMAT = "keyset-cursor"  # opaque: only a cursor from a `Link` header is valid
DATETIME_PARAM = {
    "type": "string",
    "format": "date-time",
    "pattern": DATETIME_PATTERN,
    "description": "RFC 3339 with `Z` or an offset up to ±23:59 (required), years 1970..9000; compared in UTC.",
}
ID_PARAM = {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}
ID_LIST_PARAM = {"type": "string", "description": "Ids comma-joined (`a,b`) and/or repeated; at most 1000."}
LINK_HEADER = {
    "Link": {
        "description": 'The next page: `<url>; rel="next"` (absent on the last page).',
        "schema": {"type": "string"},
    }
}
# The request bodies of the two writes, as the service validates them (a partial PATCH body, as
# drf-spectacular would document it, is refused: `status` is required).
# checkpoints.txhash: a Solana signature is base58 of exactly 64 bytes. The pattern documents the
# 87-character ones whose first digit guarantees that (every string it matches is accepted);
# 88-character signatures are accepted too. EVM hashes only where SETTLEMENT_CHAINS lists evm.
_SOLANA = r"[3-9A-HJ-NP-Za-km-z][1-9A-HJ-NP-Za-km-z]{86}"
_CHAIN_PATTERNS = {"solana": _SOLANA, "evm": "0x[0-9a-fA-F]{64}"}
TX_HASH_PATTERN = (
    r"^\s*(" + "|".join(_CHAIN_PATTERNS[c] for c in settings.SETTLEMENT_CHAINS if c in _CHAIN_PATTERNS) + r")\s*$"
)
CONFIRM_REQUEST = {
    "type": "object",
    "properties": {
        "tx_hash": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": TX_HASH_PATTERN,
            "description": "The on-chain transaction hash: hex (optional 0x) or base58; surrounding spaces ignored.",
        },
        "override_reason": {
            "type": "string",
            "maxLength": 1000,
            "pattern": "^[^\\u0000]*$",
            "description": "Needed (and recorded) only to confirm a checkpoint that pays nobody.",
        },
    },
    "required": ["tx_hash"],
}
STATUS_REQUEST = {
    "type": "object",
    "properties": {
        "status": {
            "type": "string",
            "enum": list(CheckpointStatus.values),
            "description": "The next status (no skipping).",
        }
    },
    "required": ["status"],
}


def request_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` as the body of every media type the API parses (JSON, form, multipart)."""
    return {media_type: schema for media_type in REQUEST_MEDIA_TYPES}


REQUEST_MEDIA_TYPES = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What was refused and why, naming the parameter or field."},
        "code": {
            "type": "string",
            "description": "Reason code of a refused parameter (MALFORMED, OUT_OF_RANGE, UNSTORABLE_TEXT, TOO_LARGE, …).",
        },
    },
    "required": ["detail"],
    "additionalProperties": True,  # a refused request body also names each field: {"tx_hash": [...]}
}

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


INELIGIBLE_REASONS = {
    "type": "array",
    "items": {
        "type": "string",
        "enum": ["unranked", "benchmark", "below_min_predictions", "at_or_below_benchmark", "not_best_of_cruncher"],
    },
    "description": "Why the model is not paid (empty when eligible).",
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
        "is_benchmark": {"type": "boolean", "description": "The organiser's benchmark model (never paid)."},
        "eligible": {"type": "boolean", "description": "Paid under the contract's eligibility rules (docs/rules.md)."},
        "ineligible_reasons": INELIGIBLE_REASONS,
        "parts": {
            "type": "object",
            "description": "Emission split parts (empty without a split): each ranked and judged on its own scopes.",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "rank": {"type": "integer", "nullable": True},
                    "value": NUMBER_OR_NULL,
                    "scored_count": {"type": "integer"},
                    "eligible": {"type": "boolean"},
                    "ineligible_reasons": INELIGIBLE_REASONS,
                },
            },
        },
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


# --- The schema class of every report view -------------------------------------------------------

ERROR_DESCRIPTIONS = {
    "400": "A malformed or out-of-range parameter, cursor or body (a NUL byte anywhere included).",
    "401": "An API key that is malformed, unknown or revoked (or sent in the query string); "
    "no credentials where they are required.",
    "403": "Credentials that do not allow this (a read key on a write; a staff session without CSRF token).",
    "404": "No such object.",
    "409": "An illegal transition.",
}


class ReportAutoSchema(AutoSchema):
    """Security and error responses as the report API really answers.

    - Reads are public (an empty security alternative) unless REPORTS_REQUIRE_AUTH; a key may
      still be sent, and a bad one is 401 either way. Writes always need an admin-scope key or a
      staff session (no empty alternative).
    - Every /reports operation can answer 400 and 401; writes (and reads that need auth) 403.
      404 and 409 are declared by the views where they can happen.
    - A raw JSON-Schema response is taken literally (drf-spectacular wraps a `list` action's
      schema in an array, which turned the leaderboard into an array of arrays).
    - Keyset-paged lists document their `Link` header.
    """

    _raw_response = False

    def is_write(self) -> bool:
        return any(isinstance(p, ReportWritePermission) for p in self.view.get_permissions())

    def get_auth(self):
        # One alternative per scheme: `X-API-Key` OR `Authorization: Bearer` OR a session (the
        # extension of ApiKeyAuthentication lists its two schemes in one requirement, which
        # OpenAPI reads as "both at once").
        auths = [{name: scopes} for auth in super().get_auth() for name, scopes in auth.items()]
        if not auths or self.is_write() or settings.REPORTS_REQUIRE_AUTH:
            return auths
        return [{}, *auths]

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        # A raw body schema with required properties is a required body (drf-spectacular only
        # infers that from serializers).
        if body and any(media.get("schema", {}).get("required") for media in body.get("content", {}).values()):
            body["required"] = True
        return body

    def _is_list_view(self, serializer=None) -> bool:
        return False if self._raw_response else super()._is_list_view(serializer)

    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        self._raw_response = isinstance(serializer, dict)
        try:
            return super()._get_response_for_code(serializer, status_code, media_types, direction)
        finally:
            self._raw_response = False

    def _get_response_headers_for_code(self, status_code, direction="response"):
        headers = super()._get_response_headers_for_code(status_code, direction)
        if status_code == "200" and getattr(self.view, "paginator", None) is not None:
            headers = {**LINK_HEADER, **headers}
        return headers

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400"]  # a NUL byte anywhere in the request is refused before any view runs
        if self.view.get_authenticators():  # not /healthz, /info: they read no credentials
            codes.append("401")
            if self.is_write() or settings.REPORTS_REQUIRE_AUTH:
                codes.append("403")
        for code in codes:
            responses.setdefault(code, self._get_response_for_code(ERROR, code, direction=direction))
        for code, response in responses.items():
            if code in ERROR_DESCRIPTIONS and not response.get("description"):
                response["description"] = ERROR_DESCRIPTIONS[code]
        return dict(sorted(responses.items()))
