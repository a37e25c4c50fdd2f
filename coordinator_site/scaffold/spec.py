"""Packs and spec files: what a generated workspace is made of.

A pack (`packs/<name>.json`) is a complete, valid workspace configuration. A spec file
(`"spec_version": "1"`) is a partial one merged over its pack: objects merge key by key, lists
and scalars replace. The merged result is validated against `WorkspaceConfig`; unknown keys and
unknown versions are errors, never ignored.
"""

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coordinator_site.contract import SLOT_PARAMETERS

SPEC_VERSIONS = ("1",)
PACK_VERSIONS = ("1",)
SCOPE_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# A callable value: "default" (the node's default), "challenge:<module>:<attr>" (generated into
# the challenge package) or any importable "module:attr".
CHALLENGE_PREFIX = "challenge:"
DEFAULT_CALLABLE = "default"


class ScaffoldError(Exception):
    """A slug, pack, spec or output folder that cannot be used; nothing has been written."""


class FeedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    subjects: list[str] = Field(min_length=1)
    kind: Literal["tick", "candle"]
    granularity: str = Field(min_length=1)
    poll_seconds: float = Field(gt=0)
    backfill_minutes: int = Field(ge=1)
    window_size: int = Field(ge=1)


class ScheduleEntry(BaseModel):
    """One prediction schedule; becomes one entry of `scheduled_prediction_configs.json`."""

    model_config = ConfigDict(extra="forbid")

    scope_key: str
    subject: str = Field(min_length=1)
    interval_seconds: int = Field(ge=1)
    horizon_seconds: int = Field(ge=1)
    step_seconds: int = Field(ge=1)
    active: bool = True
    order: int = 0

    @field_validator("scope_key")
    @classmethod
    def _scope_key(cls, value: str) -> str:
        if not SCOPE_KEY_RE.match(value):
            raise ValueError(f"scope_key {value!r} must match {SCOPE_KEY_RE.pattern}")
        return value


class TournamentSpec(BaseModel):
    """Tournament rounds (docs/tournament.md): the models' round method, the out-of-sample weight
    of the combined score, samples per inference chunk. Present: the workspace gets the tabular
    example models, their tests and a sample round (templates/tournament)."""

    model_config = ConfigDict(extra="forbid")

    predict_method: str = Field(default="predict_round", pattern=r"^[a-z_][a-z0-9_]*$")
    out_of_sample_weight: float = Field(default=0.5, ge=0, le=1)
    inference_chunk: int = Field(default=25, ge=1)


class WorkspaceConfig(BaseModel):
    """A pack's body, or a pack's body with a spec merged over it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None  # display name; None -> derived from the slug
    description: str = ""
    feed: FeedSpec
    schedule: list[ScheduleEntry] = Field(min_length=1)
    callables: dict[str, str]
    checkpoint_interval_seconds: int = Field(ge=60)
    snapshot_period_seconds: int = Field(ge=60)
    model_call_timeout_seconds: float = Field(gt=0)
    tournament: TournamentSpec | None = None

    @field_validator("callables")
    @classmethod
    def _callables(cls, callables: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(callables) - set(SLOT_PARAMETERS))
        if unknown:
            raise ValueError(f"unknown callable slots {unknown}; known: {sorted(SLOT_PARAMETERS)}")
        missing = sorted(set(SLOT_PARAMETERS) - set(callables))
        if missing:
            raise ValueError(f"callable slots without a value {missing}")
        for slot, value in callables.items():
            if value == DEFAULT_CALLABLE:
                continue
            path = value.removeprefix(CHALLENGE_PREFIX) if value.startswith(CHALLENGE_PREFIX) else value
            module, _, attr = path.partition(":")
            if not module or not attr:
                raise ValueError(f"{slot}={value!r}: expected 'default', 'challenge:<module>:<attr>' or 'module:attr'")
        return callables

    @field_validator("model_call_timeout_seconds")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _unique_scope_keys(self) -> "WorkspaceConfig":
        keys = [entry.scope_key for entry in self.schedule]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"schedule has duplicate scope_keys {duplicates}")
        return self


class Pack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pack_version: str
    name: str
    description: str
    body: WorkspaceConfig


SPEC_KEYS = ("spec_version", "pack", *WorkspaceConfig.model_fields)


def packs_dir() -> Path:
    return Path(settings.BASE_DIR) / "packs"


def available_packs() -> list[str]:
    """Names of the packs shipped in `packs/`."""
    return sorted(path.stem for path in packs_dir().glob("*.json"))


def load_pack(name: str) -> Pack:
    """The pack manifest `packs/<name>.json`, validated."""
    if name not in available_packs():
        raise ScaffoldError(f"unknown pack {name!r}; available packs: {', '.join(available_packs())}")
    path = packs_dir() / f"{name}.json"
    data = _read_json(path, what=f"pack {name!r}")
    if isinstance(data, dict) and data.get("pack_version") not in PACK_VERSIONS:
        raise ScaffoldError(f"pack {name!r}: unsupported pack_version {data.get('pack_version')!r}")
    try:
        return Pack.model_validate(data)
    except ValidationError as exc:
        raise ScaffoldError(f"pack {name!r} ({path}) is invalid:\n{_format_errors(exc)}") from exc


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a spec file and check its version and top-level keys (values are checked after merging)."""
    path = Path(path)
    data = _read_json(path, what="spec file")
    if not isinstance(data, dict):
        raise ScaffoldError(f"spec file {path}: expected a JSON object, got {type(data).__name__}")
    if "spec_version" not in data:
        raise ScaffoldError(f"spec file {path}: missing 'spec_version' (supported: {', '.join(SPEC_VERSIONS)})")
    if data["spec_version"] not in SPEC_VERSIONS:
        raise ScaffoldError(
            f"spec file {path}: unsupported spec_version {data['spec_version']!r} (supported: {', '.join(SPEC_VERSIONS)})"
        )
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ScaffoldError(f"spec file {path}: unknown keys {unknown}; allowed: {sorted(SPEC_KEYS)}")
    if "pack" in data and not isinstance(data["pack"], str):
        raise ScaffoldError(f"spec file {path}: 'pack' must be a string")
    return data


def merge(base: Any, override: Any) -> Any:
    """Deep-merge `override` over `base`: dicts key by key, everything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


def resolve_config(*, pack: str | None, spec_path: str | Path | None) -> tuple[Pack, WorkspaceConfig]:
    """The pack (from `--pack`, else the spec's `pack`, else baseline) and the merged configuration."""
    spec = load_spec(spec_path) if spec_path else {}
    spec_pack = spec.get("pack")
    if pack and spec_pack and pack != spec_pack:
        raise ScaffoldError(f"--pack {pack!r} contradicts the spec file's pack {spec_pack!r}")
    chosen = load_pack(pack or spec_pack or "baseline")
    body = {key: value for key, value in spec.items() if key not in ("spec_version", "pack")}
    merged = merge(chosen.body.model_dump(), body)
    try:
        return chosen, WorkspaceConfig.model_validate(merged)
    except ValidationError as exc:
        raise ScaffoldError(
            f"spec file {spec_path} merged over pack {chosen.name!r} is invalid:\n{_format_errors(exc)}"
        ) from exc


def _read_json(path: Path, *, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScaffoldError(
            f"{what} {path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)
