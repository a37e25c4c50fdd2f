"""What a checkpoint looks like to the outside: the CLI payload and prize lists."""

from decimal import Decimal
from typing import Any

from checkpoints.emission import FRAC64_TOTAL, allocate_frac64
from checkpoints.models import Checkpoint

PCT_PER_UNIT = Decimal(100) / FRAC64_TOTAL  # 1 frac64 unit = 1e-7 %


def frac64_to_pct(amount: int) -> float:
    """frac64 (1e9 = 100 %) as a percentage; exact to the 7 decimals one unit is worth."""
    return float(Decimal(amount) * PCT_PER_UNIT)


def cli_format(checkpoint: Checkpoint) -> dict[str, Any]:
    """The emission as the crunch CLI takes it: percentages keyed by cruncher index / provider.

    `{"crunch", "crunchEmission": {cruncher_index: pct}, "computeProvider": {pubkey: pct},
    "dataProvider": {pubkey: pct}, "merkleRoot"}`. Keys are the on-chain cruncher indexes the
    emission pays (never list positions); the checkpoint's ranking says which model each is.
    """
    emission = checkpoint.emission or {}

    def providers(key: str) -> dict[str, float]:
        return {r["provider"]: frac64_to_pct(r["reward_pct"]) for r in emission.get(key, [])}

    return {
        "crunch": emission.get("crunch", ""),
        "crunchEmission": {
            str(r["cruncher_index"]): frac64_to_pct(r["reward_pct"]) for r in emission.get("cruncher_rewards", [])
        },
        "computeProvider": providers("compute_provider_rewards"),
        "dataProvider": providers("data_provider_rewards"),
        "merkleRoot": checkpoint.merkle_root,
    }


def prizes(checkpoint: Checkpoint, *, total_prize: int) -> list[dict[str, Any]]:
    """Split `total_prize` (integer units) among the paid models of the checkpoint.

    One item per model with a non-zero `reward_pct`, in ranking order:
    `{"prizeId": "<checkpoint id>-<model_id>", "timestamp": period_end (epoch seconds), "model",
    "prize"}`. Prizes are integers that add up exactly to `total_prize` (largest remainder).
    """
    if isinstance(total_prize, bool) or not isinstance(total_prize, int) or total_prize < 0:
        raise ValueError(f"total_prize must be a non-negative integer, got {total_prize!r}")
    paid = [item for item in checkpoint.ranking or [] if (item.get("reward_pct") or 0) > 0]
    amounts = allocate_frac64([item["reward_pct"] for item in paid], total=total_prize)
    timestamp = int(checkpoint.period_end.timestamp())
    return [
        {
            "prizeId": f"{checkpoint.pk}-{item['model_id']}",
            "timestamp": timestamp,
            "model": item["model_id"],
            "prize": amount,
        }
        for item, amount in zip(paid, amounts, strict=True)
    ]
