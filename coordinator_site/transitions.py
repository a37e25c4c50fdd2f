"""Status lifecycles (DESIGN.md §4): one transition table per model, one conditional UPDATE per move.

A model declares `STATUS_TRANSITIONS = {from_status: {to_status, ...}}`. `transition()` moves one
row with `filter(pk=..., status__in=<allowed sources>).update(...)`: zero rows changed means the
row was not in a state that may move there (or someone else moved it first).
"""

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.utils import timezone


class InvalidTransition(Exception):
    """A status change the lifecycle does not allow, or a row that was not in the expected state."""

    def __init__(self, message: str, *, current: str | None = None, target: str | None = None):
        super().__init__(message)
        self.current = current
        self.target = target


def allowed_sources(model: type[models.Model], to: str) -> set[str]:
    """Every status from which `to` may be reached in one step."""
    table: dict[str, Iterable[str]] = model.STATUS_TRANSITIONS
    return {source for source, targets in table.items() if to in targets}


def transition(
    model: type[models.Model],
    *,
    pk: Any,
    to: str,
    expected: str | None = None,
    **updates: Any,
) -> None:
    """Move row `pk` of `model` to status `to` in one conditional UPDATE.

    `expected` narrows the allowed source to one status. Extra keyword arguments are written in
    the same UPDATE, and so is `updated_at` (any auto_now field), which `update()` would skip. Raises `InvalidTransition` (and changes nothing) when the move is illegal
    or the row is no longer in an allowed source state; `model.DoesNotExist` for an unknown pk.
    """
    sources = allowed_sources(model, to)
    if expected is not None:
        if expected not in sources:
            raise InvalidTransition(f"{model.__name__}: {expected} -> {to} is not allowed", current=expected, target=to)
        sources = {expected}
    if not sources:
        raise InvalidTransition(f"{model.__name__}: nothing may move to {to}", target=to)
    # QuerySet.update() skips auto_now: a row's updated_at must still say when its status moved.
    for field in model._meta.concrete_fields:
        if getattr(field, "auto_now", False) and field.name not in updates:
            updates[field.name] = timezone.now()
    changed = model.objects.filter(pk=pk, status__in=sources).update(status=to, **updates)
    if changed == 1:
        return
    current = model.objects.filter(pk=pk).values_list("status", flat=True).first()
    if current is None:
        raise model.DoesNotExist(f"{model.__name__} {pk} does not exist")
    raise InvalidTransition(f"{model.__name__} {pk}: {current} -> {to} is not allowed", current=current, target=to)
