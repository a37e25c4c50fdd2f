"""Pages that show live state: charts that fill their box with readable axes and visible lines,
a health table that fits, demo windows that differ, and data refreshed in place (Chromium)."""

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from reports.pages.charts import line_chart
from scoring.models import Leaderboard
from tests.factories import make_heartbeat, make_model, make_snapshot
from tests.pages.helpers import RANKED, seed_node
from tests.pages.test_browser import CHROMIUM, browser_page

ROOT = Path(__file__).resolve().parents[2]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")
T = datetime(2026, 12, 1, 23, 49, 5, tzinfo=UTC)


def test_a_short_span_gets_distinct_axis_labels_with_seconds():
    chart = line_chart([("a", [(T + timedelta(seconds=s), float(s)) for s in range(0, 50, 5)])])
    labels = [tick.label for tick in chart.x_ticks]
    assert len(labels) == len(set(labels)) >= 3
    assert labels[0] == "23:49:05"


def test_identical_series_are_drawn_with_different_widths_and_dashes():
    points = [(T + timedelta(minutes=m), 0.25) for m in range(10)]
    chart = line_chart([("score_recent", points), ("score_steady", points), ("score_anchor", points)])
    styles = [(line.width, line.dash) for line in chart.lines]
    assert len(set(styles)) == 3
    assert [line.width for line in chart.lines] == sorted((line.width for line in chart.lines), reverse=True)


def test_the_demo_configures_leaderboard_windows_that_differ_within_minutes():
    from demo.contract import DEMO_CONTRACT

    assert "CRUNCH_CONTRACT=demo.contract:DEMO_CONTRACT" in (ROOT / ".env.demo").read_text().splitlines()
    spans = [w.hours * 3600 for w in DEMO_CONTRACT.aggregation.windows.values()]
    assert len(set(spans)) == 3
    assert max(spans) <= 15 * 60  # all three fill within a quarter of an hour of demo data
    assert list(DEMO_CONTRACT.aggregation.windows) == ["score_recent", "score_steady", "score_anchor"]


@pytest.fixture
def fast_refresh(settings):
    settings.PAGES_REFRESH_SECONDS = 0.5


@pytest.fixture
def identical_windows(live_server):
    """A model whose three window series are identical (one snapshot per minute, same value),
    snapshots within a few minutes: the case where lines hid each other and labels repeated."""
    model = make_model(model_id="m-flat", name="flat")
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago in range(4, 0, -1):
        start = now - timedelta(minutes=minutes_ago)
        make_snapshot(
            model=model,
            period_start=start,
            period_end=start + timedelta(minutes=1),
            result_summary={"value": 0.25, "value_count": 3},
            content_hash=f"{minutes_ago:02d}" + "cd" * 31,
        )
    return model


@pytest.mark.browser
@needs_chromium
def test_the_model_chart_fills_its_box_with_distinct_labels_and_every_line_visible(live_server, identical_windows):
    with browser_page() as (page, errors):
        page.goto(f"{live_server.url}/models/m-flat")
        figure = page.locator("figure.chart").bounding_box()
        svg = page.locator("svg.line-chart").bounding_box()
        assert svg["width"] >= 0.95 * (figure["width"] - 16)  # the figure's padding aside
        labels = page.locator("svg.line-chart text.axis").evaluate_all("ts => ts.map(t => t.textContent)")
        x_labels = [t for t in labels if ":" in t]
        assert len(x_labels) >= 2
        assert len(x_labels) == len(set(x_labels)), x_labels
        styles = page.locator("svg.line-chart path.series").evaluate_all(
            "paths => paths.map(p => [getComputedStyle(p).strokeWidth, p.getAttribute('stroke-dasharray') || ''])"
        )
        assert len(styles) == 3
        assert len({tuple(s) for s in styles}) == 3
        # Under a thinner dashed line, the wider one keeps showing its colour.
        widths = [float(w.rstrip("px")) for w, _ in styles]
        assert widths == sorted(widths, reverse=True)
        assert errors == []


@pytest.mark.browser
@needs_chromium
def test_the_health_table_fits_1400px_and_dates_stay_on_one_line(live_server):
    now = timezone.now()
    counters = {f"counter_{i}": 1_000_000 + i for i in range(12)}
    for name in ("run_feed", "run_predict", "run_score", "run_checkpoint"):
        make_heartbeat(name=name, started_at=now - timedelta(hours=1), last_beat_at=now, counters=counters)
    with browser_page() as (page, errors):  # 1400 x 900
        page.goto(f"{live_server.url}/health")
        main = page.locator("main").bounding_box()
        table = page.locator("#workers").bounding_box()
        assert table["x"] + table["width"] <= main["x"] + main["width"] + 1
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        heights = page.locator("#workers time").evaluate_all("ts => ts.map(t => t.getClientRects().length)")
        assert heights
        assert all(lines == 1 for lines in heights)
        assert errors == []


@pytest.mark.browser
@needs_chromium
def test_the_leaderboard_refreshes_in_place_without_a_reload(live_server, fast_refresh):
    seed_node(now=timezone.now())

    def new_ranking():
        time.sleep(1.5)
        reversed_rank = list(reversed(RANKED))
        Leaderboard.objects.create(
            created_at=timezone.now(),
            entries=[
                {
                    "model_id": model_id,
                    "model_name": name,
                    "rank": rank,
                    "metrics": {"score_recent": value, "score_steady": value, "score_anchor": value},
                    "score_ranking": {"key": "score_recent", "value": value, "direction": "asc"},
                }
                for rank, (model_id, name, value) in enumerate(reversed_rank, start=1)
            ],
            meta={"ranking_key": "score_recent", "ranking_direction": "asc"},
        )

    with browser_page() as (page, errors):
        page.goto(live_server.url + "/")
        first = page.locator("#leaderboard tbody tr").evaluate_all("rows => rows.map(r => r.dataset.modelId)")
        assert first == [m for m, _, _ in RANKED]
        page.evaluate("window.__notReloaded = true")
        writer = threading.Thread(target=new_ranking)  # ORM calls outside Playwright's event loop thread
        writer.start()
        page.wait_for_function(
            "() => document.querySelector('#leaderboard tbody tr').dataset.modelId === 'm-gamma'", timeout=20000
        )
        writer.join()
        assert page.evaluate("window.__notReloaded") is True
        assert page.locator("body").get_attribute("data-refreshed-at")
        assert errors == []
