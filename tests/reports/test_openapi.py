"""Issue 20 (API): the OpenAPI document tells the truth (checked against the live API by
tests/reports/test_fuzz.py; these pin what schemathesis found wrong)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

WRITES = {
    ("post", "/reports/checkpoints/{id}/confirm"),
    ("patch", "/reports/checkpoints/{id}/status"),
    ("post", "/reports/tournament/rounds"),
    ("post", "/reports/tournament/rounds/{round_id}/ground-truth"),
    ("post", "/reports/tournament/rounds/{round_id}/rescore"),
    ("post", "/reports/tournament/rounds/{round_id}/cancel"),
}
CAN_404 = {
    "/reports/checkpoints/{id}",
    "/reports/checkpoints/{id}/emission",
    "/reports/checkpoints/{id}/emission/cli-format",
    "/reports/checkpoints/{id}/prizes",
    "/reports/checkpoints/{id}/confirm",
    "/reports/checkpoints/{id}/status",
    "/reports/checkpoints/latest",
    "/reports/checkpoints/latest/prizes",
    "/reports/emissions/latest",
    "/reports/merkle/proof",
    "/reports/tournament/rounds/{round_id}",
    "/reports/tournament/rounds/{round_id}/predictions",
    "/reports/tournament/rounds/{round_id}/ground-truth",
    "/reports/tournament/rounds/{round_id}/rescore",
    "/reports/tournament/rounds/{round_id}/cancel",
}


def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def report_operations(document):
    for path, operations in document["paths"].items():
        if path.startswith("/reports"):
            for method, operation in operations.items():
                yield method, path, operation


def content_schema(document, operation, code="200"):
    schema = operation["responses"][code]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_leaderboard_is_an_array_of_rows_not_of_arrays():
    document = openapi()
    schema = content_schema(document, document["paths"]["/reports/leaderboard"]["get"])
    assert schema["type"] == "array"
    assert schema["items"]["type"] == "object"
    assert {"model_id", "rank", "score_metrics", "score_ranking"} <= set(schema["items"]["required"])


def test_the_report_schema_is_one_object():
    document = openapi()
    schema = content_schema(document, document["paths"]["/reports/schema"]["get"])
    assert schema["type"] == "object"
    assert schema["required"] == ["schema_version", "leaderboard_columns", "metrics_widgets"]


def test_reads_are_public_and_writes_need_a_key_or_a_staff_session():
    schemes = [{"ApiKeyHeader": []}, {"BearerKey": []}, {"cookieAuth": []}]
    for method, path, operation in report_operations(openapi()):
        if (method, path) in WRITES:
            assert operation["security"] == schemes, path  # one scheme per alternative, no empty one
        else:
            assert operation["security"] == [{}, *schemes], path


def test_with_reports_require_auth_reads_are_not_public(settings):
    settings.REPORTS_REQUIRE_AUTH = True
    for _method, path, operation in report_operations(openapi()):
        assert {} not in operation["security"], path
        assert "403" in operation["responses"], path


def test_every_error_that_can_happen_is_documented_as_json_with_a_detail():
    document = openapi()
    for method, path, operation in report_operations(document):
        codes = set(operation["responses"])
        expected = {"200", "400", "401"}
        if path in CAN_404:
            expected.add("404")
        if (method, path) in WRITES:
            expected |= {"403", "409"}
        errors = codes - {"200"}
        if path == "/reports/health":
            expected.add("503")  # a red node, for uptime monitors: the health document, not an error
            errors.discard("503")
        assert codes == expected, (method, path)
        for code in errors:
            assert content_schema(document, operation, code)["required"] == ["detail"], (method, path, code)


def test_public_endpoints_outside_reports_document_their_400():
    document = openapi()
    assert set(document["paths"]["/info"]["get"]["responses"]) == {"200", "400"}
    assert "security" not in document["paths"]["/healthz"]["get"]


@pytest.mark.parametrize(
    ("path", "name", "schema"),
    [
        ("/reports/predictions", "config", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}),
        ("/reports/merkle/proof", "snapshot_id", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}),
        ("/reports/checkpoints/latest/prizes", "total_prize", {"type": "integer", "minimum": 0, "maximum": 10**30 - 1}),
        ("/reports/checkpoints/{id}", "id", {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}),
    ],
)
def test_whole_number_parameters_are_integers_with_their_range(path, name, schema):
    parameters = {p["name"]: p for p in openapi()["paths"][path]["get"]["parameters"]}
    assert parameters[name]["schema"] == schema


def test_time_bounds_and_cursors_say_what_is_accepted():
    parameters = {p["name"]: p for p in openapi()["paths"]["/reports/predictions"]["get"]["parameters"]}
    assert parameters["start"]["schema"]["format"] == "date-time"
    assert parameters["start"]["schema"]["pattern"].startswith("^(19[7-9][0-9]|")
    assert parameters["cursor"]["schema"] == {"type": "string", "format": "keyset-cursor", "minLength": 1}
    assert set(parameters["status"]["schema"]["enum"]) == {"PENDING", "SCORED", "FAILED", "ABSENT"}


def test_paged_lists_document_their_link_header():
    document = openapi()
    assert "Link" in document["paths"]["/reports/predictions"]["get"]["responses"]["200"]["headers"]
    assert "headers" not in document["paths"]["/reports/leaderboard"]["get"]["responses"]["200"]


def test_write_bodies_are_required_as_the_service_validates_them():
    paths = openapi()["paths"]
    confirm = paths["/reports/checkpoints/{id}/confirm"]["post"]["requestBody"]
    status = paths["/reports/checkpoints/{id}/status"]["patch"]["requestBody"]
    assert confirm["required"] is True
    assert status["required"] is True
    tx_hash = confirm["content"]["application/json"]["schema"]
    assert tx_hash["required"] == ["tx_hash"]
    assert tx_hash["properties"]["tx_hash"]["minLength"] == 1
    assert status["content"]["application/json"]["schema"]["required"] == ["status"]
