"""A favicon is shipped: no 'Not Found: /favicon.ico' on every admin or API page."""

import pytest
from django.test import Client


@pytest.mark.django_db
def test_favicon_ico_is_served_as_an_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\0\0\1\0"  # ICO header


@pytest.mark.django_db
def test_pages_link_the_shipped_icon():
    html = Client().get("/").content.decode()
    assert 'rel="icon" href="/static/favicon.ico"' in html
