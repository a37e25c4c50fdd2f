"""On a fresh node every page renders and says what is missing instead of erroring."""

import pytest

from tests.factories import make_model, make_prediction

pytestmark = pytest.mark.django_db


def test_leaderboard_without_any_leaderboard_explains_what_writes_it(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="empty-leaderboard"' in html
    assert "No leaderboard yet." in html
    assert "run_score" in html


def test_leaderboard_that_ranks_nobody_says_so(client):
    from scoring.models import Leaderboard

    Leaderboard.objects.create(entries=[])
    html = client.get("/").content.decode()
    assert "ranks no models" in html


def test_predictions_without_models_or_configs_names_both(client):
    html = client.get("/predictions").content.decode()
    assert "No predictions yet." in html
    assert "No prediction config is loaded" in html
    assert "No model is known yet" in html


def test_predictions_filter_matching_nothing_offers_to_clear_it(client):
    make_prediction()
    html = client.get("/predictions", {"status": "ABSENT"}).content.decode()
    assert "No prediction matches these filters." in html
    assert "No predictions yet." not in html


def test_feeds_page_without_ingestion_shows_the_configured_stream_waiting(client, settings):
    settings.FEED_SOURCE, settings.FEED_SUBJECTS = "pyth", ["BTC"]
    html = client.get("/feeds").content.decode()
    assert 'data-feed="pyth/BTC/tick/1s"' in html
    assert "no ingestion state: run_feed has not polled it" in html
    assert "No records on the tape for this stream yet" in html


def test_feeds_page_with_no_feed_configured_explains_the_settings(client, settings):
    settings.FEED_SUBJECTS = []
    html = client.get("/feeds").content.decode()
    assert 'id="empty-feeds"' in html
    assert "FEED_SUBJECTS" in html


def test_checkpoints_without_any_checkpoint_explains_the_worker(client):
    html = client.get("/checkpoints").content.decode()
    assert 'id="empty-checkpoints"' in html
    assert "run_checkpoint" in html


def test_health_without_heartbeats_is_red_and_says_how_to_start_workers(client):
    html = client.get("/health").content.decode()
    assert 'data-health="red"' in html
    assert "No worker has reported a heartbeat." in html
    assert "No feed has been polled yet." in html
    assert 'data-queue="pending_predictions">0<' in html


def test_model_without_history_explains_each_empty_section(client):
    make_model(model_id="fresh")
    html = client.get("/models/fresh").content.decode()
    assert "No snapshots yet: the score worker writes one per period" in html
    assert "No deployment recorded yet" in html
    assert "This model has not been asked for a prediction yet." in html
    assert "not set — checkpoints flag this model and never pay it" in html
