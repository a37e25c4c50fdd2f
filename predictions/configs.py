"""The prediction configs file (`scheduled_prediction_configs.json`, PREDICTION_CONFIGS_PATH).

Format: a JSON array of objects, one per schedule, upserted by `scope_key`:

    [
      {
        "scope_key": "BTC-60s-5m",          # required, unique, never renamed (it is the key)
        "scope_template": {"subject": "BTC", "step_seconds": 60},   # optional, default {}
        "interval_seconds": 60,             # required, >= 1: ask the models every N seconds
        "horizon_seconds": 300,             # required, >= 0: resolve N seconds after the slot
        "active": true,                     # optional, default true
        "order": 0                          # optional, default 0 (display / run order)
      }
    ]

`scope_template` may name the feed dims (`source`, `subject`, `kind`, `granularity`; unset ones
come from FEED_SOURCE / FEED_SUBJECTS[0] / FEED_KIND / FEED_GRANULARITY) and `step_seconds`
(default: the contract's scope), plus any competition-specific keys, which are copied into
every Input's scope. Unknown top-level keys, duplicate scope keys and wrong types are errors.
"""

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigFileError(ValueError):
    """The configs file cannot be used; the message names the file and the problem."""


class PredictionConfigSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scope_key: str = Field(min_length=1, max_length=128)
    scope_template: dict[str, Any] = Field(default_factory=dict)
    interval_seconds: int = Field(ge=1)
    horizon_seconds: int = Field(ge=0)
    active: bool = True
    order: int = 0


def parse_configs(text: str, *, source: str = "<configs>") -> list[PredictionConfigSpec]:
    """Parse and validate the file's text; raises ConfigFileError with every problem found."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigFileError(f"{source}: invalid JSON ({exc})") from exc
    if not isinstance(data, list):
        raise ConfigFileError(f"{source}: expected a JSON array of config objects, got {type(data).__name__}")
    specs, problems = [], []
    for index, item in enumerate(data):
        try:
            specs.append(PredictionConfigSpec.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "(item)"
                problems.append(f"[{index}] {where}: {error['msg']}")
    seen: set[str] = set()
    for spec in specs:
        if spec.scope_key in seen:
            problems.append(f"duplicate scope_key {spec.scope_key!r}")
        seen.add(spec.scope_key)
    if problems:
        raise ConfigFileError(f"{source}: " + "; ".join(problems))
    return specs


def read_configs(path: str | Path) -> list[PredictionConfigSpec]:
    """Read and validate the configs file at `path`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc})") from exc
    return parse_configs(text, source=str(path))
