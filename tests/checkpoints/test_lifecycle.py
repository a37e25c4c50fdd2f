"""Status lifecycle: confirm with a validated tx hash, advance without skipping, every change recorded."""

import pytest

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint, CheckpointTransition
from checkpoints.services import InvalidTxHash, checkpoint_advance, checkpoint_confirm
from coordinator_site.transitions import InvalidTransition
from tests.factories import make_checkpoint

pytestmark = pytest.mark.django_db
SOLANA_SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"
OTHER_SIG = "3x3vw8k11QcDV6sq39ECi9GWNnQBqjAc2tpz5KjsJGPiNZBMMXtoJtxc4oF3dmZNS21v6Cne6EzEnUTXk8eM2UkR"
PENDING, SUBMITTED, CLAIMABLE, PAID = (
    CheckpointStatus.PENDING,
    CheckpointStatus.SUBMITTED,
    CheckpointStatus.CLAIMABLE,
    CheckpointStatus.PAID,
)


def history(checkpoint):
    return list(
        CheckpointTransition.objects.filter(checkpoint=checkpoint).values_list(
            "from_status", "to_status", "tx_hash", "actor"
        )
    )


def state(checkpoint):
    row = Checkpoint.objects.get(pk=checkpoint.pk)
    return row.status, row.tx_hash, row.submitted_at


def test_full_lifecycle_is_recorded_with_actor_and_hash():
    checkpoint = make_checkpoint()
    confirmed = checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="alice")
    assert confirmed.status == SUBMITTED
    assert confirmed.tx_hash == SOLANA_SIG
    assert confirmed.submitted_at is not None
    assert checkpoint_advance(checkpoint=checkpoint, to=CLAIMABLE, actor="bob").status == CLAIMABLE
    assert checkpoint_advance(checkpoint=checkpoint, to=PAID, actor="carol").status == PAID
    assert history(checkpoint) == [
        (PENDING, SUBMITTED, SOLANA_SIG, "alice"),
        (SUBMITTED, CLAIMABLE, "", "bob"),
        (CLAIMABLE, PAID, "", "carol"),
    ]
    assert all(t.at is not None for t in CheckpointTransition.objects.all())


def test_confirm_twice_with_same_hash_is_a_no_op():
    checkpoint = make_checkpoint()
    first = checkpoint_confirm(checkpoint=checkpoint, tx_hash=OTHER_SIG, actor="alice")
    again = checkpoint_confirm(checkpoint=checkpoint, tx_hash=f"  {OTHER_SIG} ", actor="bob")
    assert (again.status, again.tx_hash, again.submitted_at) == (SUBMITTED, OTHER_SIG, first.submitted_at)
    assert len(history(checkpoint)) == 1
    checkpoint_advance(checkpoint=checkpoint, to=CLAIMABLE, actor="alice")
    assert checkpoint_confirm(checkpoint=checkpoint, tx_hash=OTHER_SIG, actor="bob").status == CLAIMABLE
    assert len(history(checkpoint)) == 2


def test_confirm_with_another_hash_is_refused_and_changes_nothing():
    checkpoint = make_checkpoint()
    checkpoint_confirm(checkpoint=checkpoint, tx_hash=OTHER_SIG, actor="alice")
    before = state(checkpoint)
    with pytest.raises(InvalidTransition, match="another tx_hash"):
        checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="mallory")
    assert state(checkpoint) == before
    assert len(history(checkpoint)) == 1


@pytest.mark.parametrize(
    "bad",
    ["", "   ", None, 42, "0xZZ", "not a hash", "O0Il" * 4, "a" * 129, "abc/def", "0x"],
)
def test_malformed_tx_hash_is_refused_and_changes_nothing(bad):
    checkpoint = make_checkpoint()
    with pytest.raises(InvalidTxHash):
        checkpoint_confirm(checkpoint=checkpoint, tx_hash=bad, actor="alice")
    assert state(checkpoint) == (PENDING, "", None)
    assert history(checkpoint) == []


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (PENDING, CLAIMABLE),
        (PENDING, PAID),
        (PENDING, SUBMITTED),  # needs a tx hash: only through confirm
        (SUBMITTED, PENDING),
        (SUBMITTED, PAID),
        (CLAIMABLE, PENDING),
        (CLAIMABLE, SUBMITTED),
        (PAID, PENDING),
        (PAID, SUBMITTED),
        (PAID, CLAIMABLE),
    ],
)
def test_every_illegal_advance_is_refused_and_changes_nothing(start, target):
    tx_hash = "" if start == PENDING else OTHER_SIG
    checkpoint = make_checkpoint(status=start, tx_hash=tx_hash)
    before = state(checkpoint)
    with pytest.raises(InvalidTransition):
        checkpoint_advance(checkpoint=checkpoint, to=target, actor="alice")
    assert state(checkpoint) == before
    assert history(checkpoint) == []


@pytest.mark.parametrize("start", [SUBMITTED, CLAIMABLE, PAID])
def test_confirm_of_a_checkpoint_past_pending_without_that_hash_is_refused(start):
    checkpoint = make_checkpoint(status=start, tx_hash=OTHER_SIG)
    with pytest.raises(InvalidTransition):
        checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="alice")
    assert state(checkpoint)[:2] == (start, OTHER_SIG)


def test_advance_to_the_current_status_is_a_no_op():
    checkpoint = make_checkpoint(status=CLAIMABLE, tx_hash=OTHER_SIG)
    assert checkpoint_advance(checkpoint=checkpoint, to=CLAIMABLE, actor="alice").status == CLAIMABLE
    assert history(checkpoint) == []


def test_advance_to_an_unknown_status_is_refused():
    checkpoint = make_checkpoint()
    with pytest.raises(ValueError, match="unknown checkpoint status"):
        checkpoint_advance(checkpoint=checkpoint, to="LOST", actor="alice")
    assert state(checkpoint) == (PENDING, "", None)


def test_a_stale_object_cannot_move_a_checkpoint_someone_else_moved():
    checkpoint = make_checkpoint(status=SUBMITTED, tx_hash=OTHER_SIG)
    stale = Checkpoint.objects.get(pk=checkpoint.pk)
    checkpoint_advance(checkpoint=checkpoint, to=CLAIMABLE, actor="alice")
    checkpoint_advance(checkpoint=checkpoint, to=PAID, actor="alice")
    with pytest.raises(InvalidTransition):
        checkpoint_advance(checkpoint=stale, to=CLAIMABLE, actor="bob")
    assert state(checkpoint)[0] == PAID
