"""Merkle trees over a checkpoint's snapshots (DESIGN.md §9).

Leaves are `scoring.hashing.leaf_hash(snapshot_document(snapshot))` in the checkpoint's leaf
order; a parent is `node_hash(left, right)`; on a level with an odd number of nodes the last
node is promoted unchanged to the next level (never paired with itself). A proof is the list of
siblings from the leaf up, each with the side it sits on.
"""

from typing import Any

from checkpoints.models import CheckpointLeaf
from scoring.hashing import leaf_hash, node_hash


def merkle_levels(leaves: list[str]) -> list[list[str]]:
    """Every level of the tree, leaves first, root last (a single empty level for no leaves)."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        levels.append(parents)
    return levels


def merkle_root(leaves: list[str]) -> str:
    """The root of `leaves` (hex); "" for no leaves."""
    if not leaves:
        return ""
    return merkle_levels(leaves)[-1][0]


def merkle_path(leaves: list[str], index: int) -> list[dict[str, str]]:
    """Siblings from leaf `index` up to the root: `[{"hash", "position": "left"|"right"}]`."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} out of range (0..{len(leaves) - 1})")
    path = []
    for level in merkle_levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):  # else: the odd last node, promoted without a step
            path.append({"hash": level[sibling], "position": "left" if sibling < index else "right"})
        index //= 2
    return path


def root_from_path(leaf: str, path: list[dict[str, str]]) -> str:
    """Fold a proof path onto a leaf hash."""
    current = leaf
    for step in path:
        if step["position"] == "left":
            current = node_hash(step["hash"], current)
        elif step["position"] == "right":
            current = node_hash(current, step["hash"])
        else:
            raise ValueError(f"proof step position must be 'left' or 'right', not {step['position']!r}")
    return current


def verify_proof(
    *,
    merkle_root: str,
    path: list[dict[str, str]],
    leaf_hash_hex: str | None = None,
    document: dict[str, Any] | None = None,
) -> bool:
    """True when the leaf (given as its hash, or as the snapshot document to hash) plus `path`
    folds up to `merkle_root`. Malformed hashes or steps verify as False, never raise."""
    if (leaf_hash_hex is None) == (document is None):
        raise TypeError("give exactly one of leaf_hash_hex or document")
    try:
        leaf = leaf_hash(document) if document is not None else leaf_hash_hex
        return bool(merkle_root) and root_from_path(leaf, path) == merkle_root.lower()
    except (ValueError, KeyError, TypeError):
        return False


def proof_for_snapshot(*, snapshot_id: int) -> dict[str, Any] | None:
    """The proof that a snapshot is committed to its checkpoint, or None if no checkpoint holds it.

    Returns `snapshot_id, snapshot_content_hash` (the leaf as committed), `checkpoint_id`,
    `merkle_root`, `leaf_index`, `path` and `document` (the canonical snapshot document that was
    hashed, so anyone can recompute the leaf).
    """
    leaf = CheckpointLeaf.objects.select_related("checkpoint").filter(snapshot_id=snapshot_id).order_by("-id").first()
    if leaf is None:
        return None
    leaves = list(
        CheckpointLeaf.objects.filter(checkpoint_id=leaf.checkpoint_id)
        .order_by("position")
        .values_list("leaf_hash", flat=True)
    )
    return {
        "snapshot_id": snapshot_id,
        "snapshot_content_hash": leaf.leaf_hash,
        "checkpoint_id": leaf.checkpoint_id,
        "merkle_root": leaf.checkpoint.merkle_root,
        "leaf_index": leaf.position,
        "path": merkle_path(leaves, leaf.position),
        "document": leaf.content,
    }
