"""The default REPORT_SCHEMA_PROVIDER: leaderboard columns and chart widgets from the contract.

Shape (what the reference web UI reads): `{schema_version: "1", leaderboard_columns: [{id,
type: MODEL|VALUE|USERNAME|CHART, property, format, displayName, tooltip, nativeConfiguration,
order}], metrics_widgets: [{id, type: CHART|IFRAME, displayName, tooltip, order, endpointUrl,
nativeConfiguration}]}`.
"""

from typing import Any

from coordinator_site.contract import CrunchContract

SCHEMA_VERSION = "1"


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def default_report_schema(contract: CrunchContract) -> dict[str, Any]:
    """One VALUE column per aggregation window (plus coverage), and the standard chart widgets."""
    aggregation = contract.aggregation
    columns: list[dict[str, Any]] = [
        {
            "id": 1,
            "type": "MODEL",
            "property": "model_id",
            "format": None,
            "displayName": "Model",
            "tooltip": None,
            "nativeConfiguration": {"type": "model", "statusProperty": "status"},
            "order": 0,
        },
        {
            "id": 2,
            "type": "USERNAME",
            "property": "cruncher_name",
            "format": None,
            "displayName": "Cruncher",
            "tooltip": None,
            "nativeConfiguration": None,
            "order": 5,
        },
    ]
    for position, (name, window) in enumerate(aggregation.windows.items(), start=1):
        ranked = " (ranking key)" if name == aggregation.ranking_key else ""
        better = "lower" if aggregation.ranking_direction == "asc" else "higher"
        columns.append(
            {
                "id": len(columns) + 1,
                "type": "VALUE",
                "property": name,
                "format": "decimal-4",
                "displayName": _title(name),
                "tooltip": f"Mean {aggregation.value_field} over the last {window.label}{ranked}; {better} is better",
                "nativeConfiguration": None,
                "order": position * 10,
            }
        )
    columns.append(
        {
            "id": len(columns) + 1,
            "type": "VALUE",
            "property": "coverage",
            "format": "percentage",
            "displayName": "Coverage",
            "tooltip": "Share of the predictions asked that the model answered validly",
            "nativeConfiguration": None,
            "order": 100,
        }
    )
    series = [{"name": name, "label": _title(name)} for name in aggregation.windows]
    widgets = [
        {
            "id": 1,
            "type": "CHART",
            "displayName": "Score metrics",
            "tooltip": "Snapshot summaries per period",
            "order": 10,
            "endpointUrl": "/reports/models/metrics",
            "nativeConfiguration": {
                "type": "line",
                "xAxis": {"name": "performed_at"},
                "yAxis": {
                    "series": [{"name": aggregation.value_field, "label": _title(aggregation.value_field)}],
                    "format": "decimal-4",
                },
                "displayEvolution": False,
            },
        },
        {
            "id": 2,
            "type": "CHART",
            "displayName": "Rolling score by parameters",
            "tooltip": None,
            "order": 20,
            "endpointUrl": "/reports/models/params",
            "nativeConfiguration": {
                "type": "line",
                "xAxis": {"name": "performed_at"},
                "yAxis": {"series": series, "format": "decimal-4"},
                "filterConfig": [
                    {"type": "select", "label": "Subject", "property": "subject", "autoSelectFirst": True},
                    {"type": "select", "label": "Horizon", "property": "horizon", "autoSelectFirst": True},
                ],
                "groupByProperty": "param",
                "displayEvolution": False,
            },
        },
        {
            "id": 3,
            "type": "CHART",
            "displayName": "Predictions",
            "tooltip": None,
            "order": 30,
            "endpointUrl": "/reports/predictions",
            "nativeConfiguration": {
                "type": "line",
                "xAxis": {"name": "performed_at"},
                "yAxis": {"series": [{"name": "score_value"}], "format": "decimal-4"},
                "alertConfig": {"reasonField": "score_failed_reason", "field": "score_success"},
                "groupByProperty": "scope_key",
                "displayEvolution": False,
            },
        },
    ]
    return {"schema_version": SCHEMA_VERSION, "leaderboard_columns": columns, "metrics_widgets": widgets}
