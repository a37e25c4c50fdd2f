"""`verify_checkpoint`: recompute a checkpoint from stored rows alone and name every difference.

Checks, for one checkpoint:
- every leaf document against its stored hash (the frozen document was not edited);
- every leaf against its live snapshot row (the row did not change after sealing) and the
  row's stored `content_hash`;
- the leaf set against the period's live snapshots (none missing, none extra);
- the Merkle root from the leaves against `merkle_root` and the emission's root;
- for checkpoints built under the settled-periods rules (leaf format 2, rules in meta): the
  ranking, emission and cli-format recomputed by `compute_checkpoint` with the recorded rules.
Checkpoints built before (leaf format 1) have their leaves, hashes and root checked, and are
reported as such: their ranking used float sums and cannot be recomputed byte for byte.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from checkpoints.formats import cli_format
from checkpoints.merkle import merkle_root
from checkpoints.models import Checkpoint
from checkpoints.selectors import Period, period_snapshots
from checkpoints.services import compute_checkpoint
from coordinator_site.contract import get_contract
from scoring.hashing import leaf_hash, snapshot_document


def _where(snapshot) -> str:
    return f"snapshot {snapshot.pk} (model {snapshot.model.model_id}, period {snapshot.period_start.isoformat()})"


def verify_checkpoint(checkpoint: Checkpoint) -> tuple[list[str], list[str]]:
    """(differences, notes) for `checkpoint`; no difference means it is reproducible from the
    stored rows with the rules it was built with."""
    problems: list[str] = []
    notes: list[str] = []
    meta = checkpoint.meta or {}
    leaf_format = int(meta.get("leaf_format", 1))
    leaves = list(checkpoint.leaves.select_related("snapshot__model").order_by("position"))
    for leaf in leaves:
        where = _where(leaf.snapshot)
        if leaf_hash(leaf.content) != leaf.leaf_hash:
            problems.append(f"leaf {leaf.position}, {where}: the leaf document does not match its hash")
        live = leaf_hash(snapshot_document(leaf.snapshot, leaf_format=leaf_format))
        if live != leaf.leaf_hash:
            problems.append(f"leaf {leaf.position}, {where}: the snapshot row changed after the build")
        if leaf_format >= 2 and leaf.snapshot.content_hash != live:
            problems.append(f"leaf {leaf.position}, {where}: the stored content_hash does not match the row")
    period = Period(checkpoint.period_start, checkpoint.period_end)
    snapshots = list(period_snapshots(period))
    committed = {leaf.snapshot_id for leaf in leaves}
    for snapshot in snapshots:
        if snapshot.pk not in committed:
            problems.append(f"{_where(snapshot)} of the period is in no leaf of this checkpoint")
    live_ids = {s.pk for s in snapshots}
    for leaf in leaves:
        if leaf.snapshot_id not in live_ids:
            problems.append(f"leaf {leaf.position}, {_where(leaf.snapshot)} is not in the period")
    root = merkle_root([leaf.leaf_hash for leaf in leaves])
    if root != checkpoint.merkle_root:
        problems.append(
            f"Merkle root of the leaves is {root or '(empty)'}, stored {checkpoint.merkle_root or '(empty)'}"
        )
    if (checkpoint.emission or {}).get("merkle_root", root) != checkpoint.merkle_root:
        problems.append("the emission's merkle_root differs from the checkpoint's")
    rules = meta.get("rules")
    if leaf_format < 2 or not rules:
        notes.append("built before settled periods (leaf format 1): leaves, hashes and root checked, ranking not")
        return problems, notes
    if rules.get("emission") != get_contract().emission.model_dump(mode="json"):
        notes.append("the contract's emission settings changed since the build; recomputed with today's")
    try:
        computed = compute_checkpoint(snapshots, rules=rules)
    except Exception as exc:
        problems.append(f"recomputing failed: {type(exc).__name__}: {exc}")
        return problems, notes
    problems += _diff_ranking(checkpoint.ranking, computed.ranking)
    if computed.emission != checkpoint.emission:
        problems.append(f"emission differs: stored {checkpoint.emission}, recomputed {computed.emission}")
    if cli_format(Checkpoint(emission=computed.emission, merkle_root=computed.root)) != cli_format(checkpoint):
        problems.append("cli-format differs from the one recomputed")
    if computed.root != checkpoint.merkle_root:
        problems.append(f"Merkle root recomputed from the live snapshots is {computed.root or '(empty)'}")
    return problems, notes


def _diff_ranking(stored: list[dict[str, Any]], computed: list[dict[str, Any]]) -> list[str]:
    problems = []
    if [i["model_id"] for i in stored] != [i["model_id"] for i in computed]:
        problems.append(
            f"ranking order differs: stored {[i['model_id'] for i in stored]}, "
            f"recomputed {[i['model_id'] for i in computed]}"
        )
    by_model = {i["model_id"]: i for i in computed}
    for item in stored:
        other = by_model.get(item["model_id"])
        if other is None:
            continue
        for key in sorted(set(item) | set(other)):
            if item.get(key) != other.get(key):
                problems.append(
                    f"ranking of model {item['model_id']}: {key} stored {item.get(key)!r}, recomputed {other.get(key)!r}"
                )
    return problems


def record_verification(checkpoint: Checkpoint) -> Checkpoint:
    """Verify and store the outcome in `meta.verification` (the API field; confirm needs ok)."""
    problems, notes = verify_checkpoint(checkpoint)
    with transaction.atomic():
        current = Checkpoint.objects.select_for_update().get(pk=checkpoint.pk)
        current.meta = {
            **(current.meta or {}),
            "verification": {
                "ok": not problems,
                "checked_at": timezone.now().isoformat(),
                "problems": problems[:100],
                "problem_count": len(problems),
                "notes": notes,
            },
        }
        Checkpoint.objects.filter(pk=current.pk).update(meta=current.meta, updated_at=timezone.now())
    return current
