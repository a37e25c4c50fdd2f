"""Extra units of work that apps to the right of a worker's app hand to that worker.

`run_score` lives in `scoring` and may not import `tournament` (pyproject `[tool.layers]`), yet
scoring a tournament round is one of its units. So an app registers a unit for a worker in its
`AppConfig.ready()` and the worker calls every registered unit once per pass of its loop:

    register_unit("run_score", score_next_round)

A unit takes keyword arguments (`worker_id`, and `gateway` for run_predict) and returns True
when it found work. One raising unit is logged and never stops the worker's own unit or the
other registered units.
"""

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Unit = Callable[..., bool]
_UNITS: dict[str, dict[str, Unit]] = {}


def register_unit(worker: str, unit: Unit, *, name: str | None = None) -> None:
    """Register `unit` for `worker` (idempotent: registered again under the same name, replaced)."""
    _UNITS.setdefault(worker, {})[name or f"{unit.__module__}.{unit.__qualname__}"] = unit


def registered_units(worker: str) -> dict[str, Unit]:
    return dict(_UNITS.get(worker, {}))


def run_registered_units(worker: str, **kwargs: Any) -> dict[str, int]:
    """Run every unit registered for `worker` once; counts of units that found work or raised."""
    counts: dict[str, int] = {}
    for name, unit in registered_units(worker).items():
        try:
            if unit(**kwargs):
                counts["extra_units_found"] = counts.get("extra_units_found", 0) + 1
        except Exception:
            log.exception("%s: registered unit %s raised", worker, name)
            counts["extra_unit_errors"] = counts.get("extra_unit_errors", 0) + 1
    return counts
