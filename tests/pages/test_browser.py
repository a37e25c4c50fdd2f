"""The pages in a real browser: Playwright driving Debian's chromium against the live server.

Playwright's sync API runs an asyncio loop in this thread, and Django refuses ORM calls while a
loop runs here. So each test writes its data first and only then starts the browser (the
`browser_page` context manager); the live server answers from its own thread.
"""

import contextlib
import os
from pathlib import Path

import pytest
from django.utils import timezone

from predictions.choices import PredictionStatus
from predictions.models import Prediction
from tests.pages.helpers import RANKED, seed_node, settle_node

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CONSOLE_404 = "the server responded with a status of 404"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]


@contextlib.contextmanager
def browser_page():
    """A fresh chromium page; yields (page, errors) where errors collects console errors and page errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def seeded(live_server):
    seeded = seed_node(now=timezone.now())
    settle_node(now=timezone.now())  # a healthy node: slots due ahead, inputs resolved, checkpoint built
    return seeded


def test_every_page_loads_without_console_errors(live_server, seeded):
    pages = {
        "leaderboard": "/",
        "model": "/models/m-alpha",
        "predictions": "/predictions",
        "feeds": "/feeds",
        "checkpoints": "/checkpoints",
        "checkpoint": f"/checkpoints/{seeded.checkpoint.id}",
        "health": "/health",
    }
    with browser_page() as (page, errors):
        for name, path in pages.items():
            response = page.goto(live_server.url + path)
            assert response.status == 200, path
            assert page.locator("header .brand").inner_text() == "Starter BTC direction"
            assert page.locator("[data-health]").get_attribute("data-health") == "green"
            # the stylesheet came from our own static files
            assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "flex"
            screenshot(page, name)
        assert errors == []


def test_leaderboard_shows_the_ranked_models_in_order(live_server, seeded):
    with browser_page() as (page, errors):
        page.goto(live_server.url + "/")
        rows = page.locator("#leaderboard tbody tr")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.modelId)") == [m for m, _, _ in RANKED]
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.rank)") == ["1", "2", "3"]
        assert page.locator("#leaderboard tbody tr").first.locator("td").nth(1).inner_text().startswith("beta")
        # each trend sparkline has a drawn polyline
        widths = page.locator("svg.sparkline polyline").evaluate_all("lines => lines.map(l => l.getBBox().width)")
        assert len(widths) == 3
        assert all(w > 50 for w in widths)
        assert errors == []


def test_charts_are_drawn(live_server, seeded):
    with browser_page() as (page, errors):
        for path, lines in (("/feeds", 1), ("/models/m-beta", 3)):
            page.goto(live_server.url + path)
            series = page.locator("svg.line-chart path.series")
            assert series.count() >= lines
            length = series.first.evaluate("p => p.getTotalLength()")
            box = series.first.evaluate("p => { const b = p.getBBox(); return [b.width, b.height]; }")
            assert length > 100, path
            assert box[0] > 300, path  # spans most of the plot width
            assert box[1] > 10, path  # and moves vertically
        screenshot(page, "model-chart")
        assert errors == []


def test_filters_narrow_the_predictions_list(live_server, seeded):
    failed = Prediction.objects.filter(status=PredictionStatus.FAILED).count()
    alpha_1h = Prediction.objects.filter(model__model_id="m-alpha", scope_key="BTC-1h").count()
    with browser_page() as (page, errors):
        page.goto(live_server.url + "/predictions")
        all_rows = page.locator("table.predictions tbody tr").count()
        assert all_rows == seeded.prediction_count

        page.select_option("select[name=status]", "FAILED")
        with page.expect_navigation():
            page.click("#prediction-filters button[type=submit]")
        statuses = page.locator("table.predictions tbody tr").evaluate_all("rows => rows.map(r => r.dataset.status)")
        assert len(statuses) == failed < all_rows
        assert set(statuses) == {"FAILED"}
        assert "status=FAILED" in page.url

        page.select_option("select[name=status]", "")
        page.select_option("select[name=model]", "m-alpha")
        page.select_option("select[name=config]", "BTC-1h")
        with page.expect_navigation():
            page.click("#prediction-filters button[type=submit]")
        assert page.locator("table.predictions tbody tr").count() == alpha_1h < all_rows
        screenshot(page, "predictions-filtered")
        assert errors == []


def test_unknown_model_gives_a_404_page(live_server, seeded):
    with browser_page() as (page, errors):
        response = page.goto(live_server.url + "/models/nobody")
        assert response.status == 404
        assert page.locator("#not-found h1").inner_text() == "404 — not found"
        assert "No model with id 'nobody'" in page.locator("#not-found").inner_text()
        screenshot(page, "not-found")
        # the only console error is the browser reporting the 404 itself
        assert [e for e in errors if CONSOLE_404 not in e] == []


def test_empty_node_pages_load_and_explain(live_server):
    with browser_page() as (page, errors):
        for name, path, marker in (
            ("empty-leaderboard", "/", "#empty-leaderboard"),
            ("empty-predictions", "/predictions", "#empty-predictions"),
            ("empty-checkpoints", "/checkpoints", "#empty-checkpoints"),
            ("empty-health", "/health", "#empty-workers"),
        ):
            assert page.goto(live_server.url + path).status == 200
            assert page.locator(marker).is_visible()
            screenshot(page, name)
        assert errors == []
