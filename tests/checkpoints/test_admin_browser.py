"""The checkpoint admin in a real browser: one refusal message, ISO UTC dates, "checkpoint leaves"."""

import os
import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from tests.factories import make_checkpoint
from tests.pages.test_browser import CHROMIUM, browser_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]
SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


@pytest.fixture
def admin_world(live_server):
    get_user_model().objects.create_superuser("ops", "ops@example.com", "a long admin secret")
    checkpoint = make_checkpoint(
        period_start=datetime(2026, 11, 24, tzinfo=UTC), period_end=datetime(2026, 12, 1, 23, 50, tzinfo=UTC)
    )
    return checkpoint


def login(page, base):
    page.goto(base + "/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a long admin secret")
    page.click("input[type=submit]")


def test_the_confirm_form_shows_a_refusal_once(live_server, admin_world):
    base = live_server.url
    with browser_page() as (page, _errors):
        login(page, base)
        page.goto(f"{base}/admin/checkpoints/checkpoint/{admin_world.pk}/confirm/")
        page.fill("#id_tx_hash", "0x1234abcd")
        page.click("input[type=submit]")
        text = page.locator("#content-main").inner_text() + page.locator("body").inner_text()
        assert page.locator("text=Refused").count() == 1, page.content()
        assert "Solana transaction signature" in text


def test_admin_dates_are_iso_utc_like_the_pages(live_server, admin_world):
    base = live_server.url
    with browser_page() as (page, _errors):
        login(page, base)
        page.goto(f"{base}/admin/checkpoints/checkpoint/")
        listing = page.locator("#result_list").inner_text()
        assert "2026-12-01 23:50:00 UTC" in listing
        assert not re.search(r"[A-Z][a-z]{2}\. \d", listing)  # no "Dec. 1"
        assert "p.m." not in listing


def test_the_leaf_model_is_labelled_checkpoint_leaves(live_server, admin_world):
    with browser_page() as (page, _errors):
        login(page, live_server.url)
        page.goto(live_server.url + "/admin/")
        body = page.locator("#content-main").inner_text()
        assert "Checkpoint leaves" in body
        assert "leafs" not in body.lower()
