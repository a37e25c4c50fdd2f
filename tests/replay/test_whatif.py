"""Replay and what-if on a small store the services built: identical with the live configuration,
ranks and rewards exactly as computed by hand under another scoring function."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from replay.formatting import report_text
from replay.models import ReplayKind, ReplayReport
from replay.services import ReplayError, parse_overrides, replay_range
from scoring.models import Score
from tests.replay.helpers import T, build_two_model_store, live_checksum

pytestmark = pytest.mark.django_db(transaction=True)


def test_replay_with_the_live_configuration_is_identical_and_leaves_the_live_tables_alone():
    _a, _b, period = build_two_model_store()
    before = live_checksum()
    row = replay_range(start=period.start, end=period.end)
    assert live_checksum() == before
    report = row.report
    assert row.kind == ReplayKind.REPLAY
    assert row.identical, report
    assert row.exit_code == 0
    assert report["scores"] == {**report["scores"], "compared": 4, "differ": 0}
    assert report["snapshots"]["compared"] == 2
    assert report["snapshots"]["differ"] == 0
    assert report["leaderboards"]["compared"] == 2
    assert report["leaderboards"]["differ"] == 0
    [checkpoint] = report["checkpoints"]["checkpoints"]
    assert checkpoint["identical"]
    assert checkpoint["root_identical"]
    assert checkpoint["category"] == "settled"
    by_model = {m["model_id"]: m for m in report["models"]}
    assert by_model["model-a"]["stored_score"] == by_model["model-a"]["replayed_score"] == pytest.approx(0.09)
    assert ReplayReport.objects.get(pk=row.pk).summary["identical"] is True


def test_a_what_if_with_log_loss_swaps_the_ranks_and_rewards_computed_by_hand():
    build_two_model_store()
    period_start = T - timedelta(hours=12)
    row = replay_range(
        start=period_start,
        end=T + timedelta(days=7),
        overrides={"SCORING_FUNCTION": "scoring.functions:log_loss_score"},
    )
    assert row.kind == ReplayKind.WHAT_IF
    assert row.exit_code == 0
    by_model = {m["model_id"]: m for m in row.report["models"]}
    a, b = by_model["model-a"], by_model["model-b"]
    # Brier as stored: A 0.09, B 0.125; log-loss: A -ln 0.7, B (-ln(1 - 1e-15) + ln 2) / 2.
    assert a["stored_score"] == pytest.approx(0.09)
    assert b["stored_score"] == pytest.approx(0.125)
    assert a["replayed_score"] == pytest.approx(0.35667494, rel=1e-7)
    assert b["replayed_score"] == pytest.approx(0.34657359, rel=1e-7)
    assert (a["stored_leaderboard_rank"], a["replayed_leaderboard_rank"]) == (1, 2)
    assert (b["stored_leaderboard_rank"], b["replayed_leaderboard_rank"]) == (2, 1)
    # Two ranked models: 35 % + 10 %, the 55 % shortfall shared equally: 62.5 % and 37.5 %.
    [ca] = a["checkpoints"]
    [cb] = b["checkpoints"]
    assert (ca["stored_rank"], ca["replayed_rank"]) == (1, 2)
    assert (ca["stored_reward_pct"], ca["replayed_reward_pct"]) == (625_000_000, 375_000_000)
    assert (cb["stored_reward_pct"], cb["replayed_reward_pct"]) == (375_000_000, 625_000_000)
    [checkpoint] = row.report["checkpoints"]["checkpoints"]
    assert not checkpoint["identical"]
    assert "ranking" in checkpoint["differences"]


def test_a_what_if_with_the_exclude_policy_is_accepted_and_unknown_slots_are_refused():
    assert parse_overrides(["MISSING_PREDICTION_POLICY=exclude"]) == {"MISSING_PREDICTION_POLICY": "exclude"}
    assert parse_overrides(["SCORE_PASS=cap", "SCORE_PASS_CAP_PERCENTILE=95"]) == {
        "SCORE_PASS": "cap",
        "SCORE_PASS_CAP_PERCENTILE": "95",
    }
    with pytest.raises(ReplayError, match="not overridable"):
        parse_overrides(["DATABASE_URL=sqlite:///x"])
    with pytest.raises(ReplayError, match="NAME=VALUE"):
        parse_overrides(["SCORING_FUNCTION"])


def test_the_command_exits_1_and_names_the_difference_when_a_stored_score_was_altered(capsys):
    _a, _b, period = build_two_model_store()
    score = Score.objects.order_by("prediction_id").first()
    Score.objects.filter(pk=score.pk).update(value=score.value + 0.5)
    with pytest.raises(SystemExit) as exited:
        call_command("replay", "--from", period.start.isoformat(), "--to", period.end.isoformat())
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "scores: 4 compared, 1 differ" in out
    assert "result: DIFFERS" in out
    row = ReplayReport.objects.get()
    assert row.identical is False
    assert row.report["scores"]["examples"][0]["prediction_id"] == score.prediction_id


def test_the_admin_shows_the_last_replay_reports(client):
    _a, _b, period = build_two_model_store()
    row = replay_range(
        start=period.start, end=period.end, overrides={"SCORING_FUNCTION": "scoring.functions:log_loss_score"}
    )
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    listing = client.get(reverse("admin:replay_replayreport_changelist"))
    assert listing.status_code == 200
    assert "WHAT_IF" in listing.content.decode()
    page = client.get(reverse("admin:replay_replayreport_change", args=[row.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "model-a" in text
    assert "rank 1-&gt;2" in text


def test_coalescing_merges_only_score_units_between_other_events():
    from datetime import UTC, datetime

    from replay.engine import ORDER, Event, coalesced

    at = [datetime(2026, 11, 2, 12, m, tzinfo=UTC) for m in range(6)]
    events = [
        Event(at[0], ORDER["score"], "score"),
        Event(at[1], ORDER["score"], "score"),
        Event(at[2], ORDER["leaderboard"], "leaderboard", 7),
        Event(at[3], ORDER["score"], "score"),
        Event(at[4], ORDER["score"], "score"),
        Event(at[5], ORDER["checkpoint"], "checkpoint", 3),
    ]
    assert [(e.kind, e.at) for e in coalesced(events)] == [
        ("score", at[1]),
        ("leaderboard", at[2]),
        ("score", at[4]),
        ("checkpoint", at[5]),
    ]


def test_a_coalesced_replay_is_identical_too():
    _a, _b, period = build_two_model_store()
    row = replay_range(start=period.start, end=period.end, coalesce=True)
    assert row.identical, row.summary
    assert row.report["spec"]["coalesce"] is True


def test_reresolve_reports_the_inputs_whose_ground_truth_the_tape_now_changes():
    from feeds.models import FeedRecord
    from tests.scoring.helpers import DIMS

    _a, _b, period = build_two_model_store()
    unchanged = replay_range(start=period.start, end=period.end, reresolve=True)
    assert unchanged.identical, unchanged.summary
    assert unchanged.report["ground_truth"] == {**unchanged.report["ground_truth"], "compared": 2, "changed": 0}
    # A corrected bar at the second Input's horizon (T+15m): the price no longer went down.
    bar = FeedRecord.objects.get(**DIMS, ts_event=T + timedelta(minutes=14))
    bar.values = {**bar.values, "close": 102.0}
    bar.save()
    changed = replay_range(start=period.start, end=period.end, reresolve=True)
    assert changed.report["ground_truth"]["changed"] == 1
    assert changed.identical is False
    assert changed.exit_code == 1
    assert "TAPE CHANGED: 1 of 2 inputs" in report_text(changed.report, what_if=False)
