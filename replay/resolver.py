"""The replay's ground truth: what the score worker stored, not a new look at the tape.

Set as GROUND_TRUTH_RESOLVER in the replay's child process (docs/replay.md). The scratch Inputs
keep their stored `actuals`; an Input that expired without ground truth has none (None: "not
yet", so it expires again at the same clock); one the live worker gave up on (POISONED) raises,
with its attempts set so that this is its last one.
"""

from typing import Any

# Filled by the replay child before it scores: Input ids the live worker expired as POISONED.
POISONED_INPUT_IDS: set[int] = set()


class StoredInputPoisoned(RuntimeError):
    """The live score worker could not process this Input; the replay gives up on it the same way."""


def stored_actuals(input: Any) -> dict[str, Any] | None:
    """The Input's stored actuals (None when it had none)."""
    if input.pk in POISONED_INPUT_IDS:
        raise StoredInputPoisoned(f"input {input.pk} was POISONED in the live store")
    return input.actuals
