"""Merkle: every snapshot's proof verifies against the stored root; any changed byte breaks it."""

import hashlib

import pytest

from checkpoints.merkle import merkle_path, merkle_root, proof_for_snapshot, verify_proof
from checkpoints.models import CheckpointLeaf
from checkpoints.selectors import aligned_period
from checkpoints.services import build_checkpoint
from scoring.hashing import LEAF_PREFIX, canonical_json, leaf_hash, node_hash, snapshot_document
from tests.checkpoints.helpers import many_snapshots, seal_guard_off
from tests.factories import T0

pytestmark = pytest.mark.django_db
PERIOD = aligned_period(T0)


def leaf_of_bytes(raw: bytes) -> str:
    return hashlib.sha256(LEAF_PREFIX + raw).hexdigest()


def test_tree_shape_promotes_the_odd_node_instead_of_duplicating_it():
    a, b, c = (leaf_hash({"n": i}) for i in range(3))
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == node_hash(a, b)
    assert merkle_root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert merkle_path([a, b, c], 2) == [{"hash": node_hash(a, b), "position": "left"}]
    assert merkle_root([]) == ""


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
def test_every_snapshot_proof_verifies_and_any_changed_byte_breaks_it(n):
    snapshots = many_snapshots(n, PERIOD.start)
    checkpoint = build_checkpoint(period=PERIOD)
    assert checkpoint.merkle_root
    assert checkpoint.emission["merkle_root"] == checkpoint.merkle_root
    assert CheckpointLeaf.objects.filter(checkpoint=checkpoint).count() == n

    for snapshot in snapshots:
        proof = proof_for_snapshot(snapshot_id=snapshot.pk)
        assert proof["checkpoint_id"] == checkpoint.pk
        assert proof["merkle_root"] == checkpoint.merkle_root
        # the leaf is the hash of the snapshot as it is in the database, and of the published document
        assert proof["snapshot_content_hash"] == leaf_hash(snapshot_document(snapshot))
        assert leaf_hash(proof["document"]) == proof["snapshot_content_hash"]
        assert verify_proof(
            merkle_root=checkpoint.merkle_root, path=proof["path"], document=snapshot_document(snapshot)
        )
        assert verify_proof(
            merkle_root=checkpoint.merkle_root, path=proof["path"], leaf_hash_hex=proof["snapshot_content_hash"]
        )

    # Flip every byte of the canonical document (small trees) or of a sample of leaves (1000).
    sample = snapshots if n <= 7 else snapshots[:: n // 5]
    for snapshot in sample:
        proof = proof_for_snapshot(snapshot_id=snapshot.pk)
        raw = canonical_json(snapshot_document(snapshot))
        assert verify_proof(merkle_root=checkpoint.merkle_root, path=proof["path"], leaf_hash_hex=leaf_of_bytes(raw))
        positions = range(len(raw)) if n <= 7 else range(0, len(raw), 7)
        for i in positions:
            changed = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
            assert not verify_proof(
                merkle_root=checkpoint.merkle_root, path=proof["path"], leaf_hash_hex=leaf_of_bytes(changed)
            ), f"byte {i} of snapshot {snapshot.pk} changed and the proof still verified"


def test_a_changed_path_step_or_root_does_not_verify():
    snapshots = many_snapshots(7, PERIOD.start)
    checkpoint = build_checkpoint(period=PERIOD)
    proof = proof_for_snapshot(snapshot_id=snapshots[3].pk)
    leaf = proof["snapshot_content_hash"]
    for k, step in enumerate(proof["path"]):
        for flipped in (
            {**step, "hash": ("0" if step["hash"][0] != "0" else "1") + step["hash"][1:]},
            {**step, "position": "left" if step["position"] == "right" else "right"},
        ):
            path = [*proof["path"][:k], flipped, *proof["path"][k + 1 :]]
            assert not verify_proof(merkle_root=checkpoint.merkle_root, path=path, leaf_hash_hex=leaf)
    assert not verify_proof(merkle_root=checkpoint.merkle_root, path=proof["path"][:-1], leaf_hash_hex=leaf)
    assert not verify_proof(merkle_root="00" * 32, path=proof["path"], leaf_hash_hex=leaf)
    assert not verify_proof(
        merkle_root=checkpoint.merkle_root, path=[{"hash": "zz", "position": "up"}], leaf_hash_hex=leaf
    )


def test_a_snapshot_edited_after_the_checkpoint_no_longer_verifies():
    snapshots = many_snapshots(3, PERIOD.start)
    checkpoint = build_checkpoint(period=PERIOD)
    snapshot = snapshots[1]
    proof = proof_for_snapshot(snapshot_id=snapshot.pk)
    snapshot.result_summary = {**snapshot.result_summary, "value": snapshot.result_summary["value"] + 1e-12}
    with seal_guard_off():
        snapshot.save()
    snapshot.refresh_from_db()
    assert not verify_proof(
        merkle_root=checkpoint.merkle_root, path=proof["path"], document=snapshot_document(snapshot)
    )
    # the frozen leaf document still verifies: the checkpoint is auditable after the edit
    assert verify_proof(merkle_root=checkpoint.merkle_root, path=proof["path"], document=proof["document"])


def test_a_snapshot_in_no_checkpoint_has_no_proof():
    snapshots = many_snapshots(1, PERIOD.start)
    assert proof_for_snapshot(snapshot_id=snapshots[0].pk) is None
    assert proof_for_snapshot(snapshot_id=10**9) is None
