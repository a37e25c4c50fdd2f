"""Pages render the node's state: rankings in order, filters, pagination, 404s, staff links."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from predictions.choices import PredictionStatus
from predictions.models import Prediction
from reports.pages import views
from reports.pages.selectors import encode_cursor
from tests.factories import make_checkpoint, make_input, make_model, make_prediction
from tests.pages.helpers import RANKED, seed_node, settle_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    return seed_node(now=timezone.now())


def rows_of(html: str, attr: str) -> list[str]:
    return re.findall(rf'{attr}="([^"]*)"', html)


def test_leaderboard_lists_models_in_rank_order_with_trends(client, seeded):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert rows_of(html, "data-model-id") == [model_id for model_id, _, _ in RANKED]
    assert html.count('<svg class="sparkline"') == len(RANKED)
    assert "0.1800" in html  # score_recent of the leader, 4 decimals
    assert "90.0 %" in html  # coverage


def test_leaderboard_puts_unranked_models_last(client):
    from scoring.models import Leaderboard

    Leaderboard.objects.create(
        entries=[
            {"model_id": "z", "model_name": "z", "rank": None, "metrics": {"score_recent": None}},
            {"model_id": "a", "model_name": "a", "rank": 1, "metrics": {"score_recent": 0.2}},
        ]
    )
    html = client.get("/").content.decode()
    assert rows_of(html, "data-model-id") == ["a", "z"]


def test_base_layout_shows_competition_name_navigation_and_health(client, seeded):
    html = client.get("/").content.decode()
    assert "<title>Leaderboard · Starter BTC direction</title>" in html
    for name in ("predictions", "feeds", "checkpoints", "health"):
        assert f'href="{reverse("pages:" + name)}"' in html
    assert 'data-health="red"' in html  # the seeded slots are long overdue
    settle_node(now=timezone.now())
    assert 'data-health="green"' in client.get("/").content.decode()


def test_health_badge_turns_red_when_a_worker_stopped_beating(client, seeded):
    from coordinator_site.models import WorkerHeartbeat

    settle_node(now=timezone.now())
    WorkerHeartbeat.objects.filter(name="run_score").update(last_beat_at=timezone.now() - timedelta(hours=1))
    html = client.get("/").content.decode()
    assert 'data-health="red"' in html
    assert "worker run_score: no heartbeat for 1 h (expected every 10 s)" in html


def test_model_page_shows_identity_chart_deployments_predictions_and_snapshots(client, seeded):
    response = client.get("/models/m-gamma")
    html = response.content.decode()
    assert response.status_code == 200
    assert "gamma team" in html
    assert "m-gamma_d1" in html
    assert html.count('class="series"') == 3  # one line per aggregation window
    assert "TIMEOUT" in html
    assert "no answer within 5.0 s" in html
    assert html.count("data-prediction-id") == min(12, views.MODEL_RECENT_PREDICTIONS)  # 6 inputs x 2 configs


def test_unknown_model_is_a_404_page(client, seeded):
    response = client.get("/models/no-such-model")
    assert response.status_code == 404
    html = response.content.decode()
    assert "No model with id &#x27;no-such-model&#x27; is known to this node." in html
    assert "Starter BTC direction" in html  # the site's own 404 page, with the layout


def test_predictions_filters_narrow_the_list(client, seeded):
    everything = client.get("/predictions").content.decode()
    assert len(rows_of(everything, "data-prediction-id")) == seeded.prediction_count  # 36 < one page
    failed = client.get("/predictions", {"status": "FAILED"}).content.decode()
    statuses = rows_of(failed, "data-status")
    assert statuses
    assert set(statuses) == {"FAILED"}
    assert len(statuses) == Prediction.objects.filter(status=PredictionStatus.FAILED).count()
    one = client.get("/predictions", {"model": "m-alpha", "config": "BTC-1h"}).content.decode()
    expected = Prediction.objects.filter(model__model_id="m-alpha", scope_key="BTC-1h").count()
    assert len(rows_of(one, "data-prediction-id")) == expected > 0


def test_predictions_time_filter_is_half_open_in_utc(client):
    model = make_model()
    now = timezone.now().replace(microsecond=0)
    for minutes in (30, 20, 10):
        make_prediction(model=model, input=make_input(scheduled_for=now - timedelta(minutes=minutes)))
    since = (now - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S")
    until = (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
    html = client.get("/predictions", {"since": since, "until": until}).content.decode()
    assert len(rows_of(html, "data-prediction-id")) == 1


def test_predictions_bad_filters_are_a_400_with_the_reason(client, seeded):
    response = client.get("/predictions", {"status": "MAYBE", "since": "yesterday"})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice. MAYBE is not one of the available choices." in html
    assert "Enter a valid date/time." in html
    reversed_range = client.get("/predictions", {"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"})
    assert reversed_range.status_code == 400
    assert "&#x27;From&#x27; must be before &#x27;Until&#x27;." in reversed_range.content.decode()


def test_predictions_bad_cursor_is_a_400(client, seeded):
    response = client.get("/predictions", {"before": "not-a-cursor"})
    assert response.status_code == 400
    assert "is not &#x27;&lt;epoch microseconds&gt;.&lt;id&gt;&#x27;" in response.content.decode()


def test_predictions_pages_walk_every_row_once_in_both_directions(client, seeded, monkeypatch):
    monkeypatch.setattr(views, "PREDICTIONS_PAGE_SIZE", 7)
    expected = list(Prediction.objects.order_by("-performed_at", "-id").values_list("id", flat=True))
    seen, pages, url = [], [], "/predictions"
    while url:
        html = client.get(url).content.decode()
        ids = [int(i) for i in rows_of(html, "data-prediction-id")]
        pages.append(ids)
        seen += ids
        older = re.search(r'rel="next" href="([^"]+)"', html)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert seen == expected
    # Walk back from the last page with the "newer" links.
    back = client.get(f"/predictions?after={encode_cursor(*_time_and_id(pages[-1][0]))}").content.decode()
    assert [int(i) for i in rows_of(back, "data-prediction-id")] == pages[-2]


def _time_and_id(pk):
    p = Prediction.objects.get(pk=pk)
    return p.performed_at, p.pk


def test_feeds_page_shows_counts_lag_and_a_price_chart(client, seeded):
    html = client.get("/feeds").content.decode()
    assert 'data-feed="synthetic/BTC/candle/1m"' in html
    assert ">120<" in html  # record count
    assert html.count('class="series"') == 1
    path = re.search(r'class="series" d="([^"]+)"', html).group(1)
    assert path.count("L") == 119  # one segment per record after the first


def test_checkpoint_pages_show_ranking_emission_root_and_history(client, seeded):
    listing = client.get("/checkpoints").content.decode()
    assert rows_of(listing, "data-checkpoint-id") == [str(seeded.checkpoint.id)]
    html = client.get(f"/checkpoints/{seeded.checkpoint.id}").content.decode()
    assert "f" * 64 in html
    assert "45.0000 %" in html  # percent
    assert "450,000,000" in html  # frac64
    assert "100.0000 %" in html  # the provider lists
    assert "admin:ops" in html
    assert "/admin/" not in html  # anonymous visitors get no admin links


def test_checkpoint_page_links_staff_to_the_admin_actions(client, seeded):
    staff = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    html = client.get(f"/checkpoints/{seeded.checkpoint.id}").content.decode()
    assert reverse("admin:checkpoints_checkpoint_change", args=[seeded.checkpoint.id]) in html
    assert "advance to CLAIMABLE" in html  # the seeded checkpoint is SUBMITTED
    assert 'id="admin-confirm"' not in html
    pending = make_checkpoint(period_start=seeded.checkpoint.period_start - timedelta(days=7))
    html = client.get(f"/checkpoints/{pending.id}").content.decode()
    assert reverse("admin:checkpoints_checkpoint_confirm", args=[pending.id]) in html
    assert 'id="admin-advance"' not in html


def test_unknown_checkpoint_is_a_404(client):
    response = client.get("/checkpoints/999999")
    assert response.status_code == 404
    assert "No checkpoint with id 999999." in response.content.decode()


def test_health_page_shows_workers_and_queue_depths(client, seeded):
    html = client.get("/health").content.decode()
    assert rows_of(html, "data-worker") == ["run_checkpoint", "run_feed", "run_predict", "run_score"]
    pending = Prediction.objects.filter(status=PredictionStatus.PENDING).count()
    assert f'data-queue="pending_predictions">{pending}<' in html
    # every seeded input's resolvable_at (5 min / 1 h after it) is checked against now
    assert re.search(r'data-queue="overdue_inputs">\d+<', html)
