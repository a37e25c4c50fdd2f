"""The leaderboard: window metrics from the scores in SQL, shared ranking, history, model fields."""

from datetime import timedelta

import pytest

from predictions.choices import PredictionStatus
from scoring.models import Leaderboard
from scoring.selectors import leaderboard_latest, model_aggregates, score_series, snapshot_series
from scoring.services import rebuild_leaderboard
from tests.factories import T0, make_model, make_prediction, make_score, make_snapshot

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(days=10)
ENTRY_KEYS = {
    "model_id",
    "model_name",
    "cruncher_id",
    "cruncher_name",
    "rank",
    "metrics",
    "score_ranking",
    "coverage",
    "prediction_count",
    "scored_count",
    "is_benchmark",
    "eligible",
    "ineligible_reasons",
}


def score_at(model, hours_ago, value, *, success=True, failed_reason="", scope_key=None):
    prediction = make_prediction(
        model=model,
        status=PredictionStatus.SCORED if success else PredictionStatus.ABSENT,
        performed_at=NOW - timedelta(hours=hours_ago),
        **({"scope_key": scope_key} if scope_key else {}),
    )
    return make_score(prediction=prediction, value=value, success=success, failed_reason=failed_reason)


def entry(board, model):
    return next(e for e in board.entries if e["model_id"] == model.model_id)


def test_windows_exclude_scores_outside_them():
    model = make_model()
    score_at(model, 2, 0.1)
    score_at(model, 30, 0.3)
    score_at(model, 100, 0.5)
    score_at(model, 200, 0.9)  # older than every window
    board = rebuild_leaderboard(now=NOW)
    metrics = entry(board, model)["metrics"]
    assert metrics["score_recent"] == pytest.approx(0.1)
    assert metrics["score_steady"] == pytest.approx(0.2)
    assert metrics["score_anchor"] == pytest.approx(0.3)


def test_window_mean_is_weighted_by_count_not_a_mean_of_means():
    model = make_model()
    # Two snapshot periods: three scores of 0.1 in one, one score of 0.5 in the other.
    for _ in range(3):
        score_at(model, 1.5, 0.1)
    score_at(model, 5, 0.5)
    make_snapshot(model=model, result_summary={"value": 0.1})  # snapshots are not what is averaged
    board = rebuild_leaderboard(now=NOW)
    assert entry(board, model)["metrics"]["score_recent"] == pytest.approx(0.2)  # not (0.1+0.5)/2


def test_ties_share_a_rank_ordered_by_model_id_and_unscored_models_come_last():
    b, a, c, idle = (make_model(model_id=x) for x in ("b", "a", "c", "idle"))
    score_at(a, 1, 0.2)
    score_at(b, 1, 0.2)
    score_at(c, 1, 0.1)
    board = rebuild_leaderboard(now=NOW)
    assert [(e["model_id"], e["rank"]) for e in board.entries] == [("c", 1), ("a", 2), ("b", 2), ("idle", None)]
    assert board.entries[0]["score_ranking"] == {"key": "score_recent", "value": 0.1, "direction": "asc"}
    assert all(set(e) == ENTRY_KEYS for e in board.entries)
    assert board.meta["ranking_key"] == "score_recent"
    assert board.meta["ranking_direction"] == "asc"
    assert board.meta["windows"]["score_steady"]["hours"] == 72
    assert board.meta["computed_at"] == NOW.isoformat()
    assert idle.__class__.objects.get(pk=idle.pk).overall_score["rank"] is None


def test_penalised_and_missing_answers_count_in_coverage_and_the_mean():
    model = make_model()
    score_at(model, 1, 0.1)
    score_at(model, 1, 0.7, success=False, failed_reason="ABSENT")  # worst-score policy value
    score_at(model, 1, None, success=False, failed_reason="TIMEOUT")  # excluded value
    score_at(model, 1, None, success=False, failed_reason="NO_GROUND_TRUTH")  # nobody's fault
    e = entry(rebuild_leaderboard(now=NOW), model)
    assert e["metrics"]["score_recent"] == pytest.approx(0.4)
    assert (e["prediction_count"], e["scored_count"]) == (3, 1)
    assert e["coverage"] == pytest.approx(1 / 3)


def test_model_fields_are_updated_per_scope():
    model = make_model()
    score_at(model, 1, 0.1, scope_key="BTC-5m")
    score_at(model, 1, 0.3, scope_key="BTC-1h")
    score_at(model, 1, 0.5, scope_key="BTC-1h")
    rebuild_leaderboard(now=NOW)
    model.refresh_from_db()
    assert model.overall_score["metrics"]["score_recent"] == pytest.approx(0.3)
    assert model.overall_score["rank"] == 1
    assert model.scores_by_scope["BTC-1h"]["metrics"]["score_recent"] == pytest.approx(0.4)
    assert model.scores_by_scope["BTC-5m"]["prediction_count"] == 1


def test_history_is_pruned_and_latest_is_the_newest(settings):
    settings.LEADERBOARD_HISTORY = 3
    make_model()
    boards = [rebuild_leaderboard(now=NOW + timedelta(minutes=i)) for i in range(5)]
    assert Leaderboard.objects.count() == 3
    assert leaderboard_latest().pk == boards[-1].pk
    assert set(Leaderboard.objects.values_list("pk", flat=True)) == {b.pk for b in boards[-3:]}


def test_leaderboard_latest_is_none_before_the_first_rebuild():
    assert leaderboard_latest() is None


def test_model_aggregates_and_series_selectors():
    model = make_model()
    score_at(model, 3, 0.2)
    score_at(model, 2, 0.4)
    score_at(model, 1, None, success=False, failed_reason="ABSENT")
    aggregates = model_aggregates(start=NOW - timedelta(hours=4), end=NOW)[model.pk]
    assert aggregates["value"] == pytest.approx(0.3)
    assert (aggregates["value_count"], aggregates["asked"], aggregates["answered"]) == (2, 3, 2)
    series = list(score_series(model_id=model.model_id, start=NOW - timedelta(hours=2, minutes=30)))
    assert [row["value"] for row in series] == [0.4, None]  # oldest first, window respected
    make_snapshot(model=model, period_start=T0 + timedelta(hours=1))
    make_snapshot(model=model, period_start=T0)
    assert [s.period_start for s in snapshot_series(model_id=model.model_id)] == [T0, T0 + timedelta(hours=1)]
