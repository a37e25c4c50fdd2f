"""What node health is made of (DESIGN.md §12): levels, one check, the node's verdict.

Definitions only, so every layer can use them (a worker announces its cadence here, the metrics
read levels from here). The checks themselves are computed in one place, `monitoring.health`,
from stored progress and backlogs; `current_health()` there is what every reader calls.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

GREEN, AMBER, RED = "green", "amber", "red"
LEVELS = (GREEN, AMBER, RED)
LEVEL_ORDER = {GREEN: 0, AMBER: 1, RED: 2}


@dataclass
class Check:
    """One judged thing (a stream, a config, a queue, a worker): its level and why, for a human.

    `values` carries the measured numbers (seconds, counts) and what they were judged against
    (the cadence), for the health endpoint and the metrics.
    """

    stage: str
    name: str
    level: str
    reason: str
    values: dict[str, float | int | str | None] = field(default_factory=dict)
    row: Any = field(default=None, repr=False, compare=False)  # the judged row, for the page

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "level": self.level,
            "reason": self.reason,
            "values": self.values,
        }


@dataclass
class NodeHealth:
    """The node's level (the worst check), a one-line reason and every check."""

    level: str
    reason: str
    computed_at: datetime
    checks: list[Check] = field(default_factory=list)
    database: str = "ok"

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(LEVELS, 0)
        for check in self.checks:
            counts[check.level] += 1
        return counts

    def by_stage(self, stage: str) -> list[Check]:
        return [check for check in self.checks if check.stage == stage]

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "reason": self.reason,
            "computed_at": self.computed_at.isoformat(),
            "database": self.database,
            "counts": self.counts,
            "checks": [check.as_dict() for check in self.checks],
        }


def worst(checks: list[Check]) -> str:
    """The worst level among `checks` (green for none)."""
    return max((check.level for check in checks), key=LEVEL_ORDER.__getitem__, default=GREEN)


def summarise(checks: list[Check], *, computed_at: datetime, empty_reason: str) -> NodeHealth:
    """The node's verdict from its checks: the worst level, and the worst checks' reasons."""
    if not checks:
        return NodeHealth(RED, empty_reason, computed_at, [])
    level = worst(checks)
    if level == GREEN:
        return NodeHealth(GREEN, "every stage keeping up, every worker beating on time", computed_at, checks)
    bad = [check for check in checks if check.level == level]
    reason = "; ".join(f"{check.stage} {check.name}: {check.reason}" for check in bad[:3])
    if len(bad) > 3:
        reason += f"; and {len(bad) - 3} more"
    return NodeHealth(level, reason, computed_at, checks)


def worker_cadence_seconds(unit_budget_seconds: float) -> float:
    """How long a worker may go between heartbeats: one heartbeat interval plus its longest unit.

    The shared loop beats every WORKER_HEARTBEAT_SECONDS between units and during its sleeps (a
    30 s idle sleep is no excuse), so the only legitimate silence is one unit of work.
    """
    return float(settings.WORKER_HEARTBEAT_SECONDS) + float(unit_budget_seconds)


def human_duration(value: timedelta) -> str:
    """A timedelta as '3 d 4 h', '5 m 2 s', '800 ms' (two units at most); negative keeps its sign."""
    seconds = value.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{int(seconds // size)} {unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)
