"""Checkpoint writes: building a period's checkpoint and moving it through its lifecycle."""

import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from checkpoints.choices import CheckpointStatus
from checkpoints.emission import FRAC64_TOTAL
from checkpoints.merkle import merkle_root
from checkpoints.models import Checkpoint, CheckpointLeaf, CheckpointTransition
from checkpoints.selectors import Period, next_checkpoint_period, period_ranking, period_readiness, period_snapshots
from checkpoints.txhash import InvalidTxHash, validate_tx_hash  # noqa: F401 (InvalidTxHash: part of this API)
from coordinator_site.contract import get_callable, get_contract, slot_path
from coordinator_site.transitions import InvalidTransition, transition
from scoring.hashing import canonical_json, leaf_hash, snapshot_document


class EmissionError(ValueError):
    """An emission that breaks the money rules (negative amount, list not summing to 1e9)."""


# --- Building -----------------------------------------------------------------------------


def validate_emission(emission: dict[str, Any]) -> None:
    """Raise EmissionError unless every reward list holds non-negative integers summing to 1e9
    (an empty list is allowed: nobody to pay)."""
    for key in ("cruncher_rewards", "compute_provider_rewards", "data_provider_rewards"):
        rewards = emission.get(key)
        if not isinstance(rewards, list):
            raise EmissionError(f"{key} must be a list, got {type(rewards).__name__}")
        amounts = [item.get("reward_pct") for item in rewards]
        if any(isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in amounts):
            raise EmissionError(f"{key}: every reward_pct must be a non-negative integer, got {amounts}")
        if rewards and sum(amounts) != FRAC64_TOTAL:
            raise EmissionError(f"{key} sums to {sum(amounts)}, not {FRAC64_TOTAL}")


def apply_model_rewards(ranking: list[dict[str, Any]], emission: dict[str, Any]) -> None:
    """Write each ranking item's `reward_pct` (what the emission pays for that model)."""
    model_rewards = emission.pop("model_rewards", None)
    if model_rewards is not None:
        by_model = {str(r["model_id"]): r["reward_pct"] for r in model_rewards}
        for item in ranking:
            item["reward_pct"] = by_model.get(item["model_id"], 0)
        return
    # A builder without model_rewards: a model's reward is its cruncher's when it is the only
    # model of that cruncher in the ranking; otherwise it cannot be told apart (left None).
    by_index = {r["cruncher_index"]: r["reward_pct"] for r in emission["cruncher_rewards"]}
    holders: dict[Any, int] = {}
    for item in ranking:
        holders[item["cruncher_index"]] = holders.get(item["cruncher_index"], 0) + 1
    for item in ranking:
        index = item["cruncher_index"]
        if index is None:
            item["reward_pct"] = 0
        elif holders[index] == 1:
            item["reward_pct"] = by_index.get(index, 0)


def build_checkpoint(*, period: Period, readiness: str = "", now: datetime | None = None) -> Checkpoint:
    """Write the checkpoint of `period` in one transaction: ranking, emission, leaves, Merkle root.

    The ranking is LEADERBOARD_RANKER over the period's count-weighted snapshot values; the
    emission is EMISSION_BUILDER over that ranking, with the Merkle root added to it so the root
    is part of what is submitted. Raises IntegrityError if the period already has a checkpoint
    (the unique constraint decides between concurrent builders) and EmissionError for a builder
    that breaks the money rules (nothing is written).
    """
    now = now or timezone.now()
    contract = get_contract()
    aggregation = contract.aggregation
    with transaction.atomic():
        snapshots = list(period_snapshots(period))
        ranking = period_ranking(snapshots, aggregation)
        emission = get_callable("EMISSION_BUILDER")(
            ranking, settings.CRUNCH_PUBKEY, settings.COMPUTE_PROVIDER_PUBKEY, settings.DATA_PROVIDER_PUBKEY
        )
        emission = dict(emission)
        apply_model_rewards(ranking, emission)
        validate_emission(emission)
        documents = [snapshot_document(s) for s in snapshots]
        leaves = [leaf_hash(d) for d in documents]
        root = merkle_root(leaves)
        emission["merkle_root"] = root
        ranked = [item for item in ranking if item["rank"] is not None]
        unpaid = [item["model_id"] for item in ranked if item["cruncher_index"] is None]
        meta = {
            "snapshot_count": len(snapshots),
            "model_count": len(ranking),
            "ranked_count": len(ranked),
            "empty": not ranked,
            "ranking_key": aggregation.ranking_key,
            "ranking_direction": aggregation.ranking_direction,
            "value_field": aggregation.value_field,
            "value_rule": "sum(result_summary[value_field] * value_count) / sum(value_count) per model",
            "emission_builder": slot_path("EMISSION_BUILDER")[0],
            "readiness": readiness,
            "unpaid_models": unpaid,
            "built_at": now.isoformat(),
        }
        if not snapshots:
            meta["empty_reason"] = "no snapshots in the period"
        elif not ranked:
            meta["empty_reason"] = "no model has a scored value in the period"
        if unpaid:
            meta["unpaid_reason"] = (
                "ranked models without cruncher_index are not paid; their share went to the paid models"
            )
        checkpoint = Checkpoint.objects.create(
            period_start=period.start,
            period_end=period.end,
            status=CheckpointStatus.PENDING,
            ranking=ranking,
            emission=emission,
            merkle_root=root,
            meta=meta,
            created_at=now,
        )
        CheckpointLeaf.objects.bulk_create(
            CheckpointLeaf(
                checkpoint=checkpoint,
                snapshot=snapshot,
                position=position,
                # JSON-safe and hash-identical: datetimes become the same integer microseconds.
                content=json.loads(canonical_json(document)),
                leaf_hash=leaf,
            )
            for position, (snapshot, document, leaf) in enumerate(zip(snapshots, documents, leaves, strict=True))
        )
    return checkpoint


def create_due_checkpoint(*, now: datetime | None = None) -> tuple[Checkpoint | None, str]:
    """Build the checkpoint of the next period if it is due. Returns (checkpoint or None, reason).

    One call builds at most one period, so missed periods are caught up one per call. A
    concurrent builder that wins the period makes this call return (None, "built elsewhere").
    """
    now = now or timezone.now()
    period = next_checkpoint_period()
    if period is None:
        return None, "no data yet"
    ready, reason = period_readiness(period, now=now)
    if not ready:
        return None, reason
    try:
        return build_checkpoint(period=period, readiness=reason, now=now), reason
    except IntegrityError:
        if Checkpoint.objects.filter(period_start=period.start, period_end=period.end).exists():
            return None, "built elsewhere"
        raise


# --- Lifecycle ------------------------------------------------------------------------------


def record_transition(*, checkpoint_id: int, from_status: str, to_status: str, actor: str, tx_hash: str = "") -> None:
    CheckpointTransition.objects.create(
        checkpoint_id=checkpoint_id,
        from_status=from_status,
        to_status=to_status,
        tx_hash=tx_hash,
        actor=actor or "unknown",
        at=timezone.now(),
    )


def checkpoint_confirm(*, checkpoint: Checkpoint, tx_hash: str, actor: str) -> Checkpoint:
    """PENDING -> SUBMITTED with the transaction hash of the on-chain submission.

    The same hash again is a no-op that returns the checkpoint; another hash, or a checkpoint
    that is not PENDING, raises InvalidTransition; a malformed hash raises InvalidTxHash.
    Nothing changes on refusal.
    """
    tx_hash = validate_tx_hash(tx_hash)
    with transaction.atomic():
        try:
            transition(
                Checkpoint,
                pk=checkpoint.pk,
                to=CheckpointStatus.SUBMITTED,
                expected=CheckpointStatus.PENDING,
                tx_hash=tx_hash,
                submitted_at=timezone.now(),
            )
        except InvalidTransition as exc:
            current = Checkpoint.objects.get(pk=checkpoint.pk)
            if current.tx_hash == tx_hash:
                return current
            if current.tx_hash:
                raise InvalidTransition(
                    f"checkpoint {checkpoint.pk} was already confirmed with another tx_hash ({current.tx_hash})",
                    current=current.status,
                    target=CheckpointStatus.SUBMITTED,
                ) from exc
            raise
        record_transition(
            checkpoint_id=checkpoint.pk,
            from_status=CheckpointStatus.PENDING,
            to_status=CheckpointStatus.SUBMITTED,
            actor=actor,
            tx_hash=tx_hash,
        )
    return Checkpoint.objects.get(pk=checkpoint.pk)


def checkpoint_advance(*, checkpoint: Checkpoint, to: str, actor: str) -> Checkpoint:
    """Move a checkpoint one step (SUBMITTED -> CLAIMABLE -> PAID); no skipping.

    The current status as target is a no-op. SUBMITTED is only reached through
    `checkpoint_confirm` (it needs a tx_hash). Raises InvalidTransition (nothing changed) for
    any other move, ValueError for an unknown status.
    """
    if to not in CheckpointStatus.values:
        raise ValueError(f"unknown checkpoint status {to!r}; one of {CheckpointStatus.values}")
    if to == CheckpointStatus.SUBMITTED:
        raise InvalidTransition(
            "SUBMITTED needs a tx_hash: use confirm", current=checkpoint.status, target=CheckpointStatus.SUBMITTED
        )
    with transaction.atomic():
        current = Checkpoint.objects.get(pk=checkpoint.pk)
        if current.status == to:
            return current
        sources = [s for s, targets in Checkpoint.STATUS_TRANSITIONS.items() if to in targets]
        source = sources[0] if len(sources) == 1 else current.status
        transition(Checkpoint, pk=checkpoint.pk, to=to, expected=source)
        record_transition(checkpoint_id=checkpoint.pk, from_status=source, to_status=to, actor=actor)
    return Checkpoint.objects.get(pk=checkpoint.pk)
