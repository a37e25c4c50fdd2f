"""Building checkpoints: the schedule from the database, readiness, one transaction, ranking parity."""

from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.db.models import Avg
from django.test import override_settings

from checkpoints.models import Checkpoint, CheckpointLeaf
from checkpoints.selectors import Period, aligned_period, next_checkpoint_period, period_readiness
from checkpoints.services import EmissionError, build_checkpoint, create_due_checkpoint
from coordinator_site.contract import get_contract
from predictions.choices import InputStatus, PredictionStatus
from predictions.models import PredictionConfig
from scoring.models import Score
from scoring.ranking import rank_entries
from tests.checkpoints.helpers import add_snapshot, indexed_models
from tests.factories import T0, make_config, make_heartbeat, make_input, make_model, make_prediction, make_score

pytestmark = pytest.mark.django_db
WEEK = timedelta(days=7)
P1 = aligned_period(T0)
AFTER = P1.end + timedelta(seconds=1)


def test_periods_are_aligned_half_open_weeks_starting_monday():
    assert P1 == Period(T0, T0 + WEEK)  # T0 is a Monday 00:00 UTC
    assert aligned_period(T0 + WEEK - timedelta(microseconds=1)) == P1
    assert aligned_period(T0 + WEEK).start == T0 + WEEK
    assert aligned_period(T0 + timedelta(hours=5), interval_seconds=3600).start == T0 + timedelta(hours=5)


def test_nothing_to_do_without_data():
    assert next_checkpoint_period() is None
    assert create_due_checkpoint(now=AFTER) == (None, "no data yet")
    assert not Checkpoint.objects.exists()


def test_first_period_is_the_aligned_period_of_the_first_input_or_snapshot():
    (model,) = indexed_models(1)
    add_snapshot(model, T0 + WEEK + timedelta(hours=3), 0.2, 5)
    make_input(scheduled_for=T0 + timedelta(days=3), status=InputStatus.RESOLVED)
    assert next_checkpoint_period() == P1


def served_past(period_end):
    """Every config's schedule has moved past `period_end` (its slots before it are served)."""
    PredictionConfig.objects.update(next_run_at=period_end)


def test_not_built_before_the_period_ends_nor_while_its_inputs_are_open():
    (model,) = indexed_models(1)
    add_snapshot(model, T0, 0.2, 5)
    open_input = make_input(scheduled_for=T0 + WEEK - timedelta(minutes=1))
    make_input(scheduled_for=T0 + WEEK)  # next period (half-open): does not hold this one back
    served_past(P1.end)
    assert create_due_checkpoint(now=P1.end - timedelta(microseconds=1)) == (None, "period not ended")
    checkpoint, reason = create_due_checkpoint(now=AFTER)
    assert checkpoint is None
    assert "waits for: 1 input(s) not resolved or expired yet (run_score never seen)" in reason
    open_input.status = InputStatus.EXPIRED
    open_input.save()
    checkpoint, reason = create_due_checkpoint(now=AFTER)
    assert reason.startswith("settled")
    assert (checkpoint.period_start, checkpoint.period_end) == (P1.start, P1.end)
    assert checkpoint.meta["readiness"] == reason


def test_waits_while_a_config_has_not_served_its_slots_before_the_period_end():
    (model,) = indexed_models(1)
    add_snapshot(model, T0, 0.2, 5)
    config = make_config(scope_key="BTC-late", next_run_at=P1.end - timedelta(minutes=1))
    make_config(scope_key="BTC-off", next_run_at=T0, active=False)  # inactive: not waited for
    make_heartbeat(name="run_predict", last_beat_at=P1.end)
    checkpoint, reason = create_due_checkpoint(now=AFTER)
    assert checkpoint is None
    assert "predict schedule not past the period end for BTC-late" in reason
    assert "run_predict last seen" in reason
    config.next_run_at = P1.end  # the last slot was served (or recorded as missed)
    config.save()
    assert create_due_checkpoint(now=AFTER)[0] is not None


@override_settings(CHECKPOINT_GRACE_SECONDS=600)
def test_a_clock_never_builds_an_unsettled_period_it_only_reports_it_overdue():
    (model,) = indexed_models(1)
    add_snapshot(model, T0, 0.2, 5)
    make_input(scheduled_for=T0 + timedelta(days=6))
    served_past(P1.end)
    assert not period_readiness(P1, now=P1.end + timedelta(seconds=599)).overdue
    for late in (600, 86_400 * 30):
        readiness = period_readiness(P1, now=P1.end + timedelta(seconds=late))
        assert (readiness.ready, readiness.overdue) == (False, True)
        assert readiness.reason.startswith("OVERDUE")
        assert create_due_checkpoint(now=P1.end + timedelta(seconds=late))[0] is None


def test_missed_periods_are_caught_up_one_per_call_and_an_empty_period_says_so():
    a, b = indexed_models(2)
    add_snapshot(a, T0, 0.2, 5)
    add_snapshot(b, T0, 0.3, 5)
    # nothing in the second week; data again in the third
    add_snapshot(a, T0 + 2 * WEEK, 0.4, 5)
    add_snapshot(b, T0 + 2 * WEEK + timedelta(hours=1), 0.1, 5)
    now = T0 + 3 * WEEK + timedelta(hours=1)
    built = [create_due_checkpoint(now=now)[0] for _ in range(3)]
    assert [c.period_start for c in built] == [T0, T0 + WEEK, T0 + 2 * WEEK]
    assert create_due_checkpoint(now=now) == (None, "period not ended")

    empty = built[1]
    assert empty.ranking == []
    assert empty.meta["empty"] is True
    assert empty.meta["empty_reason"] == "no snapshots in the period"
    assert empty.emission["cruncher_rewards"] == []
    assert empty.merkle_root == ""
    assert [item["model_id"] for item in built[2].ranking] == [b.model_id, a.model_id]
    # the schedule lives in the database: nothing in memory decides the next period
    assert next_checkpoint_period() == Period(T0 + 3 * WEEK, T0 + 4 * WEEK)


def test_one_transaction_writes_ranking_emission_leaves_and_root():
    a, b, c = indexed_models(3)
    snapshots = [add_snapshot(a, T0, 0.30, 4), add_snapshot(b, T0, 0.10, 4), add_snapshot(c, T0, 0.20, 4)]
    add_snapshot(a, T0 + WEEK, 0.0, 4)  # starts at the period end: belongs to the next period
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    ranking = checkpoint.ranking
    assert [item["model_id"] for item in ranking] == [b.model_id, c.model_id, a.model_id]
    assert [item["rank"] for item in ranking] == [1, 2, 3]
    assert [item["reward_pct"] for item in ranking] == [500_000_000, 250_000_000, 250_000_000]
    assert ranking[0] == {
        "model_id": b.model_id,
        "model_name": b.name,
        "cruncher_id": b.cruncher_id,
        "cruncher_name": b.cruncher_name,
        "cruncher_index": b.cruncher_index,
        "rank": 1,
        "value": 0.10,
        "value_count": 4,
        "prediction_count": 4,
        "snapshot_count": 1,
        "reward_pct": 500_000_000,
        "flags": [],
        # eligibility (docs/rules.md): the contract's defaults pay every ranked model
        "is_benchmark": False,
        "scored_count": 0,
        "eligible": True,
        "ineligible_reasons": [],
    }
    assert checkpoint.emission["cruncher_rewards"] == [
        {"cruncher_index": b.cruncher_index, "reward_pct": 500_000_000},
        {"cruncher_index": c.cruncher_index, "reward_pct": 250_000_000},
        {"cruncher_index": a.cruncher_index, "reward_pct": 250_000_000},
    ]
    assert "model_rewards" not in checkpoint.emission
    assert checkpoint.emission["merkle_root"] == checkpoint.merkle_root
    leaves = CheckpointLeaf.objects.filter(checkpoint=checkpoint)
    assert sorted(leaf.snapshot_id for leaf in leaves) == sorted(s.pk for s in snapshots)
    assert checkpoint.meta["snapshot_count"] == 3
    assert checkpoint.meta["ranked_count"] == 3


@override_settings(CRUNCH_PUBKEY="CrunchPK1", COMPUTE_PROVIDER_PUBKEY="ComputePK1", DATA_PROVIDER_PUBKEY="")
def test_emission_uses_the_configured_keys():
    (model,) = indexed_models(1)
    add_snapshot(model, T0, 0.2, 5)
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    assert checkpoint.emission["crunch"] == "CrunchPK1"
    assert checkpoint.emission["compute_provider_rewards"] == [{"provider": "ComputePK1", "reward_pct": 1_000_000_000}]
    assert checkpoint.emission["data_provider_rewards"] == []


def test_a_model_without_cruncher_index_is_flagged_and_not_paid():
    paid = make_model(cruncher_index=3)
    unindexed = make_model(cruncher_index=None)
    add_snapshot(unindexed, T0, 0.1, 5)  # the best model
    add_snapshot(paid, T0, 0.2, 5)
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    first, second = checkpoint.ranking
    assert (first["model_id"], first["rank"], first["cruncher_index"]) == (unindexed.model_id, 1, None)
    assert first["flags"] == ["NO_CRUNCHER_INDEX"]
    assert first["reward_pct"] == 0
    assert second["reward_pct"] == 1_000_000_000
    assert checkpoint.emission["cruncher_rewards"] == [{"cruncher_index": 3, "reward_pct": 1_000_000_000}]
    assert checkpoint.meta["unpaid_models"] == [unindexed.model_id]
    assert "unpaid_reason" in checkpoint.meta


def test_a_model_without_scored_values_stays_in_the_ranking_unranked():
    (scored,) = indexed_models(1)
    silent = make_model(cruncher_index=9)
    add_snapshot(scored, T0, 0.2, 5)
    add_snapshot(silent, T0, None, 0, prediction_count=5, counts={"ABSENT": 5})
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    assert [(item["model_id"], item["rank"], item["flags"]) for item in checkpoint.ranking] == [
        (scored.model_id, 1, []),
        (silent.model_id, None, ["UNRANKED"]),
    ]
    assert checkpoint.ranking[1]["reward_pct"] == 0


def test_a_period_with_only_unscored_models_says_no_model_is_ranked():
    (silent,) = indexed_models(1)
    add_snapshot(silent, T0, None, 0, prediction_count=5, counts={"ABSENT": 5})
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    assert checkpoint.meta["empty"] is True
    assert checkpoint.meta["empty_reason"] == "no model has a scored value in the period"
    assert checkpoint.emission["cruncher_rewards"] == []


def test_a_second_build_of_the_same_period_is_refused_by_the_database():
    (model,) = indexed_models(1)
    add_snapshot(model, T0, 0.2, 5)
    build_checkpoint(period=P1)
    with pytest.raises(IntegrityError):
        build_checkpoint(period=P1)
    assert Checkpoint.objects.count() == 1


@pytest.mark.parametrize("builder", ["overpaying_builder", "negative_builder"])
def test_an_emission_that_breaks_the_money_rules_writes_nothing(builder):
    a, b = indexed_models(2)
    add_snapshot(a, T0, 0.2, 5)
    add_snapshot(b, T0, 0.3, 5)
    with (
        override_settings(CALLABLE_OVERRIDES={"EMISSION_BUILDER": f"tests.checkpoints.bad_builders:{builder}"}),
        pytest.raises(EmissionError),
    ):
        create_due_checkpoint(now=AFTER)
    assert not Checkpoint.objects.exists()
    assert not CheckpointLeaf.objects.exists()


@override_settings(CALLABLE_OVERRIDES={"EMISSION_BUILDER": "checkpoints.emission:build_proportional_emission"})
def test_the_emission_slot_is_swappable():
    a, b, c = indexed_models(3)
    add_snapshot(a, T0, 0.1, 5)
    add_snapshot(b, T0, 0.2, 5)
    add_snapshot(c, T0, 0.4, 5)
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    assert [item["reward_pct"] for item in checkpoint.ranking] == [600_000_000, 400_000_000, 0]
    assert checkpoint.meta["emission_builder"] == "checkpoints.emission:build_proportional_emission"


# --- Ranking parity with the leaderboard --------------------------------------------------


def scores_and_snapshots(plan):
    """plan: {model: {hour: (value, count)}} -> Scores of RESOLVED inputs + the snapshots they make."""
    config = make_config()
    inputs = {}
    for model, hours in plan.items():
        for hour, (value, count) in hours.items():
            for k in range(count):
                at = T0 + timedelta(hours=hour, minutes=k)
                if at not in inputs:
                    inputs[at] = make_input(config=config, scheduled_for=at, status=InputStatus.RESOLVED)
                prediction = make_prediction(input=inputs[at], model=model, status=PredictionStatus.SCORED)
                make_score(prediction=prediction, value=value)
            add_snapshot(model, T0 + timedelta(hours=hour), value, count)
    served_past(P1.end)


def leaderboard_order(period):
    """The leaderboard's view of the period: window mean computed from the scores themselves,
    ranked by the same ranking routine."""
    rows = (
        Score.objects.filter(performed_at__gte=period.start, performed_at__lt=period.end)
        .values("model__model_id")
        .annotate(mean=Avg("value"))
    )
    aggregation = get_contract().aggregation
    entries = [{"model_id": r["model__model_id"], "metrics": {aggregation.ranking_key: r["mean"]}} for r in rows]
    return [e["model_id"] for e in rank_entries(entries, aggregation)]


def test_checkpoint_order_equals_the_leaderboard_order_over_the_same_period():
    a, b, c, d = indexed_models(4)
    scores_and_snapshots(
        {
            # 1 x 0.0 then 9 x 0.5: count-weighted 0.45 (a naive mean of snapshot means says 0.25)
            a: {0: (0.0, 1), 1: (0.5, 9)},
            b: {0: (0.3, 9), 1: (0.3, 1)},
            c: {0: (0.35, 5), 1: (0.35, 5)},
            # 9 x 0.2 then 1 x 0.9: count-weighted 0.27 (a naive mean says 0.55)
            d: {0: (0.2, 9), 1: (0.9, 1)},
        }
    )
    checkpoint, _ = create_due_checkpoint(now=AFTER)
    order = [item["model_id"] for item in checkpoint.ranking]
    assert order == leaderboard_order(P1)
    assert order == [d.model_id, b.model_id, c.model_id, a.model_id]
    values = defaultdict(float, {item["model_id"]: item["value"] for item in checkpoint.ranking})
    assert values[a.model_id] == pytest.approx(0.45)
    assert values[d.model_id] == pytest.approx(0.27)
