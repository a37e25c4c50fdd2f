"""Checkpoint writes: building a period's checkpoint and moving it through its lifecycle."""

import json
from dataclasses import dataclass
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
from coordinator_site.contract import Aggregation, get_contract, import_path, slot_path
from coordinator_site.transitions import InvalidTransition, transition
from predictions.models import ParticipantModel
from scoring.eligibility import eligibility_summary
from scoring.hashing import LEAF_FORMAT, canonical_json, leaf_hash, snapshot_document
from scoring.models import Score, Snapshot, SnapshotSeal
from scoring.services import hold_seal_lock


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


def apply_part_rewards(ranking: list[dict[str, Any]], emission: dict[str, Any]) -> None:
    """Move a split emission's `part_rewards` onto the ranking items' `parts[name].reward_pct`,
    after checking that each part's list is non-negative and sums to exactly 1e9 (or pays nobody)."""
    part_rewards = emission.pop("part_rewards", None)
    if part_rewards is None:
        return
    for name, rewards in part_rewards.items():
        amounts = [r.get("reward_pct") for r in rewards]
        if any(isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in amounts):
            raise EmissionError(f"part {name}: every reward_pct must be a non-negative integer")
        if sum(amounts) not in (0, FRAC64_TOTAL):
            raise EmissionError(f"part {name} sums to {sum(amounts)}, not {FRAC64_TOTAL}")
        by_model = {str(r["model_id"]): r["reward_pct"] for r in rewards}
        for item in ranking:
            if name in (item.get("parts") or {}):
                item["parts"][name]["reward_pct"] = by_model.get(item["model_id"], 0)


def apply_model_rewards(ranking: list[dict[str, Any]], emission: dict[str, Any]) -> None:
    """Write each ranking item's `reward_pct` (what the emission pays for that model)."""
    apply_part_rewards(ranking, emission)
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


# The contract slots a checkpoint's content depends on; their paths are recorded in its meta.
RULE_SLOTS = ("MODEL_SCORE_AGGREGATOR", "LEADERBOARD_RANKER", "EMISSION_BUILDER")


def current_rules() -> dict[str, Any]:
    """The rules a checkpoint is built with, recorded in its meta so `verify_checkpoint`
    recomputes it with the same ones later (slot paths, aggregation, emission tiers, keys)."""
    contract = get_contract()
    return {
        "contract": settings.CRUNCH_CONTRACT,
        "slots": {slot: slot_path(slot)[0] for slot in RULE_SLOTS},
        "aggregation": contract.aggregation.model_dump(mode="json"),
        "emission": contract.emission.model_dump(mode="json"),
        "eligibility": {
            **contract.eligibility.model_dump(mode="json"),
            "benchmark_model_ids": sorted(
                ParticipantModel.objects.filter(is_benchmark=True).values_list("model_id", flat=True)
            ),
        },
        "pubkeys": {
            "crunch": settings.CRUNCH_PUBKEY,
            "compute_provider": settings.COMPUTE_PROVIDER_PUBKEY,
            "data_provider": settings.DATA_PROVIDER_PUBKEY,
        },
        "leaf_format": LEAF_FORMAT,
    }


@dataclass
class Computed:
    """What a checkpoint commits to, computed from its period's snapshots and its rules alone."""

    ranking: list[dict[str, Any]]
    emission: dict[str, Any]
    documents: list[dict[str, Any]]
    leaves: list[str]
    root: str


def compute_checkpoint(snapshots: list[Snapshot], *, rules: dict[str, Any]) -> Computed:
    """Ranking (LEADERBOARD_RANKER over the period's exact per-model values), emission
    (EMISSION_BUILDER, money rules checked), leaf documents, leaves and Merkle root: a pure
    function of the stored rows, used by the build and by `verify_checkpoint` alike."""
    aggregation = Aggregation.model_validate(rules["aggregation"])
    slots = rules["slots"]
    ranker = import_path(slots["LEADERBOARD_RANKER"], variable="LEADERBOARD_RANKER")
    builder = import_path(slots["EMISSION_BUILDER"], variable="EMISSION_BUILDER")
    ranking = period_ranking(
        snapshots,
        aggregation,
        ranker=ranker,
        eligibility=rules.get("eligibility"),  # absent: built before eligibility rules
        split=(rules.get("emission") or {}).get("split") or None,
    )
    keys = rules["pubkeys"]
    emission = dict(builder(ranking, keys["crunch"], keys["compute_provider"], keys["data_provider"]))
    apply_model_rewards(ranking, emission)
    validate_emission(emission)
    documents = [snapshot_document(s, leaf_format=rules["leaf_format"]) for s in snapshots]
    leaves = [leaf_hash(d) for d in documents]
    root = merkle_root(leaves)
    emission["merkle_root"] = root
    return Computed(ranking, emission, documents, leaves, root)


def payout_note(ranking: list[dict[str, Any]], emission: dict[str, Any]) -> str:
    """Why nobody is paid ("" when somebody is)."""
    if emission.get("cruncher_rewards"):
        return ""
    ranked = [item for item in ranking if item["rank"] is not None]
    if not ranked:
        return "nobody to pay: no model has a scored value in the period"
    if not any(item.get("eligible", True) for item in ranked) and not any(
        part.get("eligible") for item in ranked for part in (item.get("parts") or {}).values()
    ):
        return f"nobody to pay: none of the {len(ranked)} ranked model(s) is eligible (see ineligible_reasons)"
    return f"nobody to pay: {len(ranked)} ranked model(s) have no cruncher index"


def build_checkpoint(
    *,
    period: Period,
    readiness: str = "",
    now: datetime | None = None,
    forced_by: str = "",
    forced_reason: str = "",
) -> Checkpoint:
    """Write the checkpoint of `period` in one transaction, seal its snapshots, then verify it.

    Ranking, emission, leaves and root come from `compute_checkpoint` with `current_rules()`
    (recorded in meta). The period's snapshots are locked and sealed (SnapshotSeal) in the same
    transaction, under the seal lock score writes hold shared, so no score lands in them after
    they were read. Raises IntegrityError if the period already has a live checkpoint (the
    unique constraint decides between concurrent builders) and EmissionError for a builder that
    breaks the money rules (nothing is written). `forced_by`/`forced_reason`: an operator built
    a period that was not settled (recorded, shown).
    """
    now = now or timezone.now()
    rules = current_rules()
    with transaction.atomic():
        hold_seal_lock(shared=False)
        snapshots = list(period_snapshots(period).select_for_update(of=("self",)))
        computed = compute_checkpoint(snapshots, rules=rules)
        ranking, emission = computed.ranking, computed.emission
        aggregation = rules["aggregation"]
        ranked = [item for item in ranking if item["rank"] is not None]
        unpaid = [item["model_id"] for item in ranked if item["cruncher_index"] is None and item.get("eligible", True)]
        meta = {
            "snapshot_count": len(snapshots),
            "model_count": len(ranking),
            "ranked_count": len(ranked),
            "empty": not ranked,
            "ranking_key": aggregation["ranking_key"],
            "ranking_direction": aggregation["ranking_direction"],
            "value_field": aggregation["value_field"],
            "value_rule": "exact sum(value_sum) / sum(value_count) per model over its snapshots, rounded once",
            "emission_builder": rules["slots"]["EMISSION_BUILDER"],
            "rules": rules,
            "leaf_format": rules["leaf_format"],
            "readiness": readiness,
            "forced": bool(forced_by),
            "unpaid_models": unpaid,
            "late_scores": late_scores_since_last_checkpoint(now=now),
            "built_at": now.isoformat(),
        }
        if "eligibility" in rules:
            meta["eligibility"] = {
                **eligibility_summary(ranking),
                "ineligible_models": [
                    {"model_id": item["model_id"], "reasons": item["ineligible_reasons"]}
                    for item in ranking
                    if not item["eligible"]
                ],
            }
        if rules["emission"].get("split"):
            meta["payout_parts"] = {
                part["name"]: {
                    "weight_pct": part["weight_pct"],
                    "scope_keys": part["scope_keys"],
                    "reward_sum": sum((item["parts"][part["name"]]["reward_pct"] or 0) for item in ranking),
                    "ranked_count": sum(1 for item in ranking if item["parts"][part["name"]]["rank"] is not None),
                    "eligible_count": sum(1 for item in ranking if item["parts"][part["name"]]["eligible"]),
                }
                for part in rules["emission"]["split"]
            }
        if forced_by:
            meta.update(forced_by=forced_by, forced_reason=forced_reason)
        if not snapshots:
            meta["empty_reason"] = "no snapshots in the period"
        elif not ranked:
            meta["empty_reason"] = "no model has a scored value in the period"
        meta["payout_note"] = payout_note(ranking, emission)
        if unpaid and not meta["payout_note"]:
            meta["unpaid_reason"] = (
                "ranked models without cruncher_index are not paid; their share went to the paid models"
            )
        checkpoint = Checkpoint.objects.create(
            period_start=period.start,
            period_end=period.end,
            status=CheckpointStatus.PENDING,
            ranking=ranking,
            emission=emission,
            merkle_root=computed.root,
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
            for position, (snapshot, document, leaf) in enumerate(
                zip(snapshots, computed.documents, computed.leaves, strict=True)
            )
        )
        # Snapshots hashed under an older leaf format get the hash they are committed with.
        stale = [
            (snapshot.pk, leaf)
            for snapshot, leaf in zip(snapshots, computed.leaves, strict=True)
            if snapshot.content_hash != leaf
        ]
        for pk, leaf in stale:
            Snapshot.objects.filter(pk=pk).update(content_hash=leaf)
        SnapshotSeal.objects.create(
            period_start=period.start, period_end=period.end, checkpoint_id=checkpoint.pk, sealed_at=now
        )
    from checkpoints.verification import record_verification

    return record_verification(checkpoint)


def late_scores_since_last_checkpoint(*, now: datetime, limit: int = 1000) -> dict[str, Any]:
    """Scores flagged late (their period was sealed before they arrived) since the previous
    checkpoint was built: reported in the next checkpoint's meta, never merged."""
    previous = (
        Checkpoint.objects.exclude(status=CheckpointStatus.VOID)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    scores = Score.objects.filter(late=True, scored_at__lte=now)
    if previous is not None:
        scores = scores.filter(scored_at__gt=previous)
    rows = list(
        scores.order_by("performed_at", "prediction_id").values_list(
            "prediction_id", "model__model_id", "performed_at", "value"
        )[:limit]
    )
    return {
        "count": scores.count() if len(rows) == limit else len(rows),
        "items": [
            {"prediction_id": p, "model_id": str(m), "performed_at": t.isoformat(), "value": v} for p, m, t, v in rows
        ],
    }


def create_due_checkpoint(*, now: datetime | None = None) -> tuple[Checkpoint | None, str]:
    """Build the checkpoint of the next period once it is settled. Returns (checkpoint or None, reason).

    One call builds at most one period, so missed periods are caught up one per call. A
    concurrent builder that wins the period makes this call return (None, "built elsewhere").
    """
    now = now or timezone.now()
    period = next_checkpoint_period()
    if period is None:
        return None, "no data yet"
    readiness = period_readiness(period, now=now)
    if not readiness.ready:
        return None, readiness.reason
    return _build_once(period=period, readiness=readiness.reason, now=now)


def _build_once(*, period: Period, **options: Any) -> tuple[Checkpoint | None, str]:
    try:
        return build_checkpoint(period=period, **options), options.get("readiness", "")
    except IntegrityError:
        live = Checkpoint.objects.exclude(status=CheckpointStatus.VOID)
        if live.filter(period_start=period.start, period_end=period.end).exists():
            return None, "built elsewhere"
        raise


def force_checkpoint(*, reason: str, actor: str, now: datetime | None = None) -> Checkpoint:
    """Build the next period although it is not settled: an operator's decision, recorded
    (`forced`, actor, reason, what it waited for). Scores that arrive later for it are late.
    Raises ValueError without a reason, before the period has ended, or with no data."""
    if not (reason or "").strip():
        raise ValueError("forcing a checkpoint needs a reason")
    now = now or timezone.now()
    period = next_checkpoint_period()
    if period is None:
        raise ValueError("no data yet: there is no period to build")
    readiness = period_readiness(period, now=now)
    if now < period.end:
        raise ValueError(f"period {period.start.isoformat()} to {period.end.isoformat()} has not ended")
    checkpoint, why = _build_once(
        period=period,
        readiness=f"FORCED by {actor or 'unknown'}: {reason.strip()} ({readiness.reason})",
        now=now,
        forced_by=actor or "unknown",
        forced_reason=reason.strip(),
    )
    if checkpoint is None:
        raise ValueError(f"period {period.start.isoformat()} was {why}")
    return checkpoint


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


def _check_confirmable(checkpoint: Checkpoint, *, override_reason: str, actor: str) -> str:
    """Refuse (InvalidTransition) a checkpoint that did not pass `verify_checkpoint`, or whose
    payout is empty without an operator's override reason; returns the override recorded."""
    verification = (checkpoint.meta or {}).get("verification") or {}
    if not verification.get("ok"):
        problems = "; ".join(verification.get("problems", [])[:3]) or "not verified yet"
        raise InvalidTransition(
            f"checkpoint {checkpoint.pk} cannot be confirmed: verification did not pass ({problems}); "
            "run `manage.py verify_checkpoint`",
            current=checkpoint.status,
            target=CheckpointStatus.SUBMITTED,
        )
    if (checkpoint.emission or {}).get("cruncher_rewards"):
        return ""
    override_reason = (override_reason or "").strip()
    if not override_reason:
        note = (checkpoint.meta or {}).get("payout_note") or "nobody to pay"
        raise InvalidTransition(
            f"checkpoint {checkpoint.pk} pays nobody ({note}): confirming it needs an override reason",
            current=checkpoint.status,
            target=CheckpointStatus.SUBMITTED,
        )
    Checkpoint.objects.filter(pk=checkpoint.pk).update(
        meta={**checkpoint.meta, "empty_payout_override": {"reason": override_reason, "actor": actor or "unknown"}}
    )
    return override_reason


def checkpoint_confirm(*, checkpoint: Checkpoint, tx_hash: str, actor: str, override_reason: str = "") -> Checkpoint:
    """PENDING -> SUBMITTED with the transaction hash of the on-chain submission.

    The same hash again is a no-op that returns the checkpoint; another hash, or a checkpoint
    that is not PENDING, raises InvalidTransition; a malformed hash raises InvalidTxHash. A
    checkpoint must have passed `verify_checkpoint`, and one that pays nobody needs
    `override_reason` (recorded with the actor). Nothing changes on refusal.
    """
    tx_hash = validate_tx_hash(tx_hash)
    with transaction.atomic():
        current = Checkpoint.objects.select_for_update().get(pk=checkpoint.pk)
        if current.status == CheckpointStatus.PENDING:
            _check_confirmable(current, override_reason=override_reason, actor=actor)
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
    if to == CheckpointStatus.VOID:
        raise InvalidTransition("VOID needs a reason: use void", current=checkpoint.status, target=to)
    with transaction.atomic():
        current = Checkpoint.objects.get(pk=checkpoint.pk)
        if current.status == to:
            return current
        sources = [s for s, targets in Checkpoint.STATUS_TRANSITIONS.items() if to in targets]
        source = sources[0] if len(sources) == 1 else current.status
        transition(Checkpoint, pk=checkpoint.pk, to=to, expected=source)
        record_transition(checkpoint_id=checkpoint.pk, from_status=source, to_status=to, actor=actor)
    return Checkpoint.objects.get(pk=checkpoint.pk)


def checkpoint_void(*, checkpoint: Checkpoint, reason: str, actor: str) -> Checkpoint:
    """PENDING -> VOID: the checkpoint is kept as history, its seal is lifted and its period is
    built again by `run_checkpoint` under the usual readiness rules. Needs a reason (recorded
    with the actor); InvalidTransition for a checkpoint that is not PENDING."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("voiding a checkpoint needs a reason")
    with transaction.atomic():
        hold_seal_lock(shared=False)
        current = Checkpoint.objects.select_for_update().get(pk=checkpoint.pk)
        meta = {
            **current.meta,
            "voided": {"reason": reason, "actor": actor or "unknown", "at": timezone.now().isoformat()},
        }
        transition(Checkpoint, pk=checkpoint.pk, to=CheckpointStatus.VOID, expected=CheckpointStatus.PENDING, meta=meta)
        SnapshotSeal.objects.filter(checkpoint_id=checkpoint.pk).delete()
        record_transition(
            checkpoint_id=checkpoint.pk,
            from_status=CheckpointStatus.PENDING,
            to_status=CheckpointStatus.VOID,
            actor=actor,
        )
    return Checkpoint.objects.get(pk=checkpoint.pk)
