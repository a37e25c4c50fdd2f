"""A checkpoint's updated_at says when its status last moved (confirm, then each advance)."""

from datetime import timedelta

import pytest
import time_machine

from checkpoints.models import Checkpoint
from checkpoints.services import checkpoint_advance, checkpoint_confirm
from tests.factories import T0, make_checkpoint

pytestmark = pytest.mark.django_db
SOLANA_SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


def updated_at(checkpoint):
    return Checkpoint.objects.values_list("updated_at", flat=True).get(pk=checkpoint.pk)


def test_updated_at_moves_on_confirm_and_on_every_status_change():
    with time_machine.travel(T0, tick=False):
        checkpoint = make_checkpoint()
    assert updated_at(checkpoint) == T0
    stamps = []
    for minutes, step in enumerate(("confirm", "CLAIMABLE", "PAID"), start=1):
        with time_machine.travel(T0 + timedelta(minutes=minutes), tick=False):
            if step == "confirm":
                checkpoint_confirm(checkpoint=checkpoint, tx_hash=SOLANA_SIG, actor="alice")
            else:
                checkpoint_advance(checkpoint=checkpoint, to=step, actor="alice")
        stamps.append(updated_at(checkpoint))
    assert stamps == [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
