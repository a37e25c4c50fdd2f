"""Settled periods and reproducible money: determinism, ties, sealing, late scores, verification."""

import re
import subprocess
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from checkpoints.emission import FRAC64_TOTAL, build_tiered_emission
from checkpoints.models import Checkpoint, CheckpointLeaf, CheckpointTransition
from checkpoints.services import checkpoint_confirm, create_due_checkpoint, force_checkpoint
from checkpoints.verification import record_verification
from coordinator_site.contract import get_contract
from coordinator_site.transitions import InvalidTransition
from feeds.models import FeedRecord
from predictions.choices import InputStatus
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from scoring.hashing import canonical_json, snapshot_document
from scoring.models import Leaderboard, Score, Snapshot, SnapshotSeal
from scoring.ranking import rank_entries
from scoring.services import rebuild_leaderboard, score_batch
from tests.checkpoints.helpers import seal_guard_off
from tests.factories import T0, make_config, make_model, make_prediction
from tests.scoring.helpers import BAR, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)
SETTLED = {"CHECKPOINT_INTERVAL_SECONDS": 3600, "SNAPSHOT_PERIOD_SECONDS": 600}
NOW = T0 + 2 * HOUR
MODELS = [f"model-{c}" for c in "abcdefg"] + ["twin-a", "twin-b"]
INPUTS = 24
SOLANA_SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


def p_up(model_id: str, n: int) -> float:
    """Pseudo-random answers; the twins answer identically (so score identically)."""
    key = "twin" if model_id.startswith("twin") else model_id
    return ((n * 7919 + sum(map(ord, key)) * 104729) % 997) / 997


def build_world(*, reverse: bool = False, unindexed: tuple[str, ...] = ()) -> None:
    """INPUTS inputs 2 minutes apart in [T0, T0+48m), every model answering, and a tape that
    resolves them; rows inserted in reverse order when asked (other ids, other arrival order)."""
    make_tape(T0 - 2 * BAR, [100.0 + ((i * 7919) % 23) - 11 for i in range(INPUTS * 2 + 12)])
    config = make_config(scope_key="BTC-settled", next_run_at=NOW, interval_seconds=120)
    order = list(reversed(MODELS)) if reverse else MODELS
    models = {
        m: make_model(
            model_id=m,
            name=m,
            cruncher_id=m,
            cruncher_name=m,
            cruncher_index=None if m in unindexed else MODELS.index(m),
        )
        for m in order
    }
    steps = list(range(INPUTS))
    for n in reversed(steps) if reverse else steps:
        at = T0 + n * 2 * BAR
        input_ = make_scoring_input(scheduled_for=at, config=config, received_at=at)
        for m in order:
            make_prediction(input=input_, model=models[m], output={"p_up": p_up(m, n)}, performed_at=at)


def wipe() -> None:
    SnapshotSeal.objects.all().delete()
    CheckpointLeaf.objects.all().delete()
    CheckpointTransition.objects.all().delete()
    Checkpoint.objects.all().delete()
    Snapshot.objects.all().delete()
    Score.objects.all().delete()
    Prediction.objects.all().delete()
    Input.objects.all().delete()
    PredictionConfig.objects.all().delete()
    Leaderboard.objects.all().delete()
    ParticipantModel.objects.all().delete()
    FeedRecord.objects.all().delete()


def score_everything(batch: int) -> None:
    while score_batch(worker="w", batch=batch, now=NOW).claimed:
        pass


def outcome() -> dict:
    """Everything that is hashed, ranked or paid, by natural keys."""
    snapshots = sorted(
        (s.model.model_id, s.period_start, s.content_hash, canonical_json(snapshot_document(s)))
        for s in Snapshot.objects.select_related("model")
    )
    board = rebuild_leaderboard(now=NOW)
    checkpoint, _ = create_due_checkpoint(now=NOW)
    assert checkpoint is not None
    return {
        "snapshots": snapshots,
        "leaderboard": [(e["model_id"], e["rank"], e["metrics"]) for e in board.entries],
        "root": checkpoint.merkle_root,
        "emission": checkpoint.emission,
        "ranking": checkpoint.ranking,
        "leaves": list(checkpoint.leaves.order_by("position").values_list("leaf_hash", flat=True)),
    }


@override_settings(**SETTLED)
def test_the_same_scores_give_byte_identical_snapshots_boards_and_roots_in_any_order():
    build_world()
    score_everything(batch=1)  # one Input per transaction: snapshots merged 24 times
    first = outcome()
    wipe()
    build_world(reverse=True)  # other row ids, other arrival order
    score_everything(batch=7)
    second = outcome()
    assert first == second
    assert len(first["snapshots"]) == len(MODELS) * 5  # 48 minutes of 10-minute buckets


@pytest.mark.slow
@override_settings(**SETTLED)
def test_four_concurrent_score_workers_give_the_same_bytes_as_one(transactional_db, manage_py, worker_env):
    build_world()
    score_everything(batch=3)
    single = outcome()
    wipe()
    build_world(reverse=True)
    env = {**worker_env, "CHECKPOINT_INTERVAL_SECONDS": "3600", "SNAPSHOT_PERIOD_SECONDS": "600"}
    argv = [*manage_py, "run_score", "--once", "--batch", "2"]
    # Every process takes its own Inputs (leases), merging into the same snapshots concurrently.
    while Input.objects.filter(status=InputStatus.RECEIVED).exists():
        runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
        for run in runs:
            output = run.communicate(timeout=120)[0]
            assert run.returncode == 0, output
    assert outcome() == single


@override_settings(**SETTLED)
def test_identical_score_lists_share_a_rank_on_the_board_the_page_and_the_checkpoint(client):
    build_world()
    score_everything(batch=5)
    board = rebuild_leaderboard(now=NOW)
    ranks = {e["model_id"]: e["rank"] for e in board.entries}
    values = {e["model_id"]: e["metrics"] for e in board.entries}
    assert ranks["twin-a"] == ranks["twin-b"]
    assert values["twin-a"] == values["twin-b"]
    api = {row["model_id"]: row["rank"] for row in APIClient().get("/reports/leaderboard").json()}
    assert api["twin-a"] == api["twin-b"] == ranks["twin-a"]
    page = client.get("/").content.decode()
    shown = dict(re.findall(r'data-model-id="([^"]+)" data-rank="(\d*)"', page))
    assert shown["twin-a"] == shown["twin-b"] == str(ranks["twin-a"])

    checkpoint, _ = create_due_checkpoint(now=NOW)
    items = {i["model_id"]: i for i in checkpoint.ranking}
    assert items["twin-a"]["rank"] == items["twin-b"]["rank"]
    assert items["twin-a"]["value"] == items["twin-b"]["value"]
    assert abs(items["twin-a"]["reward_pct"] - items["twin-b"]["reward_pct"]) <= 1
    # The leaderboard and the checkpoint agree: same scores, same values, same order and ties.
    key = get_contract().aggregation.ranking_key
    assert [(e["model_id"], e["rank"]) for e in board.entries] == [
        (i["model_id"], i["rank"]) for i in checkpoint.ranking
    ]
    assert all(values[i["model_id"]][key] == i["value"] for i in checkpoint.ranking)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the sealed-snapshot trigger is PostgreSQL's")
@override_settings(**SETTLED)
def test_the_database_refuses_any_change_to_a_sealed_snapshot():
    build_world()
    score_everything(batch=10)
    checkpoint, _ = create_due_checkpoint(now=NOW)
    sealed = checkpoint.leaves.first().snapshot
    for attempt in (
        lambda: Snapshot.objects.filter(pk=sealed.pk).update(prediction_count=999),
        lambda: connection.cursor().execute("DELETE FROM scoring_snapshot WHERE id = %s", [sealed.pk]),
        lambda: Snapshot.objects.create(model=make_model(), period_start=T0, period_end=T0 + timedelta(minutes=10)),
    ):
        with pytest.raises(DatabaseError, match="sealed period"), transaction.atomic():
            attempt()
    assert record_verification(checkpoint).meta["verification"]["ok"]


@override_settings(**SETTLED)
def test_a_forced_build_then_a_late_score_is_stored_flagged_and_never_paid(client):
    build_world()
    late_input = Input.objects.order_by("-scheduled_for").first()
    # Score everything but the last Input: it stays open, so the period waits...
    Input.objects.filter(pk=late_input.pk).update(next_attempt_at=NOW + HOUR)
    score_everything(batch=10)
    assert create_due_checkpoint(now=NOW) == (None, create_due_checkpoint(now=NOW)[1])
    assert "1 input(s) not resolved" in create_due_checkpoint(now=NOW)[1]
    # ...until an operator forces it.
    with pytest.raises(ValueError, match="reason"):
        force_checkpoint(reason=" ", actor="ops")
    forced = force_checkpoint(reason="exchange outage", actor="ops", now=NOW)
    assert forced.meta["forced"] is True
    assert (forced.meta["forced_by"], forced.meta["forced_reason"]) == ("ops", "exchange outage")
    hashes = dict(Snapshot.objects.values_list("pk", "content_hash"))

    Input.objects.filter(pk=late_input.pk).update(next_attempt_at=None)
    result = score_batch(worker="w", batch=10, now=NOW + BAR)
    assert (result.resolved, result.late) == (1, len(MODELS))
    late = Score.objects.filter(late=True)
    assert late.count() == len(MODELS)
    assert dict(Snapshot.objects.values_list("pk", "content_hash")) == hashes  # sealed: untouched
    assert record_verification(forced).meta["verification"]["ok"]

    # Listed on the checkpoint page and in the API, not on the leaderboard or in any payout.
    page = client.get(f"/checkpoints/{forced.pk}").content.decode()
    assert 'id="late-scores"' in page
    assert 'id="forced"' in page
    detail = APIClient().get(f"/reports/checkpoints/{forced.pk}").json()
    assert len(detail["late_scores"]) == len(MODELS)
    assert detail["forced"] is True
    board = rebuild_leaderboard(now=NOW + BAR)
    asked = {e["model_id"]: e["prediction_count"] for e in board.entries}
    assert set(asked.values()) == {INPUTS - 1}
    # ...and in the next checkpoint's meta.
    make_snapshot_next_period()
    nxt, _ = create_due_checkpoint(now=NOW + HOUR)
    assert nxt.meta["late_scores"]["count"] == len(MODELS)
    assert all(item["model_id"] in MODELS for item in nxt.meta["late_scores"]["items"])


def make_snapshot_next_period():
    Snapshot.objects.create(
        model=ParticipantModel.objects.get(model_id="model-a"),
        period_start=T0 + HOUR,
        period_end=T0 + HOUR + timedelta(minutes=10),
        prediction_count=0,
        counts={},
        result_summary={},
    )


def tamper(sql: str, params: list) -> None:
    with seal_guard_off() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def verified_checkpoint(settings):
    settings.CHECKPOINT_INTERVAL_SECONDS = 3600
    settings.SNAPSHOT_PERIOD_SECONDS = 600
    build_world()
    score_everything(batch=10)
    checkpoint, _ = create_due_checkpoint(now=NOW)
    assert checkpoint.meta["verification"]["ok"], checkpoint.meta["verification"]
    return checkpoint


def verify_fails_naming(checkpoint, manage_py, worker_env, needle):
    run = subprocess.run(
        [*manage_py, "verify_checkpoint", str(checkpoint.pk)],
        env={**worker_env, "CHECKPOINT_INTERVAL_SECONDS": "3600", "SNAPSHOT_PERIOD_SECONDS": "600"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0, run.stdout
    assert needle in run.stdout, run.stdout
    checkpoint.refresh_from_db()
    assert not checkpoint.meta["verification"]["ok"]
    with pytest.raises(InvalidTransition, match="verification did not pass"):
        checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="ops")


def test_verify_passes_on_honest_data(verified_checkpoint, manage_py, worker_env):
    run = subprocess.run(
        [*manage_py, "verify_checkpoint", "--all"],
        env={**worker_env, "CHECKPOINT_INTERVAL_SECONDS": "3600", "SNAPSHOT_PERIOD_SECONDS": "600"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"ok   checkpoint {verified_checkpoint.pk}" in run.stdout


@pytest.mark.usefixtures("transactional_db")
def test_verify_names_a_snapshot_row_changed_after_sealing(verified_checkpoint, manage_py, worker_env):
    leaf = verified_checkpoint.leaves.select_related("snapshot__model").first()
    tamper("UPDATE scoring_snapshot SET prediction_count = prediction_count + 1 WHERE id = %s", [leaf.snapshot_id])
    verify_fails_naming(
        verified_checkpoint, manage_py, worker_env, f"snapshot {leaf.snapshot_id} (model {leaf.snapshot.model.model_id}"
    )


@pytest.mark.usefixtures("transactional_db")
def test_verify_names_an_edited_leaf_document(verified_checkpoint, manage_py, worker_env):
    leaf = verified_checkpoint.leaves.order_by("position").last()
    CheckpointLeaf.objects.filter(pk=leaf.pk).update(content={**leaf.content, "prediction_count": 0})
    verify_fails_naming(
        verified_checkpoint, manage_py, worker_env, f"leaf {leaf.position}, snapshot {leaf.snapshot_id}"
    )


@pytest.mark.usefixtures("transactional_db")
def test_verify_names_an_altered_stored_hash(verified_checkpoint, manage_py, worker_env):
    leaf = verified_checkpoint.leaves.order_by("position").first()
    CheckpointLeaf.objects.filter(pk=leaf.pk).update(leaf_hash="0" * 64)
    verify_fails_naming(verified_checkpoint, manage_py, worker_env, f"snapshot {leaf.snapshot_id}")


@override_settings(**SETTLED)
def test_an_empty_payout_is_built_shown_and_confirmed_only_with_an_override(client):
    build_world(unindexed=tuple(MODELS))
    score_everything(batch=10)
    checkpoint, _ = create_due_checkpoint(now=NOW)
    assert checkpoint.emission["cruncher_rewards"] == []
    assert checkpoint.meta["payout_note"] == f"nobody to pay: {len(MODELS)} ranked model(s) have no cruncher index"
    page = client.get(f"/checkpoints/{checkpoint.pk}").content.decode()
    assert "nobody to pay: 9 ranked model(s) have no cruncher index" in page
    assert "their share went to the paid models" not in page
    with pytest.raises(InvalidTransition, match="pays nobody"):
        checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="ops")
    confirmed = checkpoint_confirm(
        checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="ops", override_reason="test crunch, no payout"
    )
    assert confirmed.status == "SUBMITTED"
    assert confirmed.meta["empty_payout_override"] == {"reason": "test crunch, no payout", "actor": "ops"}


scores = st.lists(
    st.one_of(st.floats(min_value=0, max_value=1, allow_nan=False), st.sampled_from([0.25, 0.5])),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(values=scores)
def test_property_rewards_sum_to_1e9_better_never_gets_less_ties_equal_within_one(values):
    aggregation = get_contract().aggregation
    entries = [{"model_id": f"m{i:02}", "metrics": {aggregation.ranking_key: v}} for i, v in enumerate(values)]
    ranking = [{**e, "cruncher_index": i} for i, e in enumerate(rank_entries(entries, aggregation))]
    emission = build_tiered_emission(ranking, "", "", "")
    rewards = {r["model_id"]: r["reward_pct"] for r in emission["model_rewards"]}
    assert sum(r["reward_pct"] for r in emission["cruncher_rewards"]) == FRAC64_TOTAL
    assert sum(rewards.values()) == FRAC64_TOTAL
    for a in ranking:
        for b in ranking:
            if a["rank"] < b["rank"]:
                assert rewards[a["model_id"]] >= rewards[b["model_id"]]
            if a["rank"] == b["rank"]:
                assert abs(rewards[a["model_id"]] - rewards[b["model_id"]]) <= 1
