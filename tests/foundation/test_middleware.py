import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url", ["/reports/predictions?model=%00", "/predictions?status=a%00b", "/reports/models/global?projectIds=%00"]
)
def test_a_nul_byte_in_the_query_string_is_a_400_not_a_database_error(client, url):
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_a_nul_byte_in_the_api_key_header_is_a_400(client):
    response = client.get("/reports/leaderboard", HTTP_X_API_KEY="ab\x00cd")
    assert response.status_code == 400


def test_ordinary_requests_pass(client):
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/reports/predictions?start=2084-02-23T11:29:33%2B19:18",
        "/reports/models/global?end=1865-05-05T18:24:18%2B21:45",
        "/reports/snapshots?since=2026-01-01T00:00:00%2B23:59",
        "/predictions?since=2026-01-01T00:00:00%2B23:59",
    ],
)
def test_an_offset_postgres_cannot_store_is_converted_to_utc_not_a_500(client, url):
    assert client.get(url).status_code in (200, 400)
