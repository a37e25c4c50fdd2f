"""The competition contract (DESIGN.md §2) and the wiring of its callable slots.

A `CrunchContract` describes one competition: its payload types, scope, aggregation windows,
emission tiers, missing-answer policy and the default `module:attr` path of every callable
slot. The node loads it from `CRUNCH_CONTRACT`; each slot may be overridden by an environment
variable of the same name (`SCORING_FUNCTION=scoring.functions:log_loss_score`).

Slots and the positional parameters each callable must accept:

| slot                       | called as                                              | returns |
|----------------------------|--------------------------------------------------------|---------|
| RAW_INPUT_PROVIDER         | (config, now)                                          | raw input dict from the tape |
| INFERENCE_INPUT_BUILDER    | (raw_input)                                            | what models receive in `tick` |
| INFERENCE_OUTPUT_VALIDATOR | (output)                                               | normalised output dict; raises ValueError |
| PREDICTION_SCOPE_BUILDER   | (config, raw_input)                                    | scope dict stored on the Input |
| PREDICT_CALL_BUILDER       | (scope, inference_input)                               | (method, args, kwargs) for `predict` |
| GROUND_TRUTH_RESOLVER      | (input)                                                | ground-truth dict, or None (not yet) |
| SCORING_FUNCTION           | (prediction, ground_truth)                             | score_type instance or dict |
| MODEL_SCORE_AGGREGATOR     | (results)                                              | snapshot summary dict |
| LEADERBOARD_RANKER         | (entries, aggregation)                                 | entries with `rank`, ordered |
| EMISSION_BUILDER           | (ranking, crunch_pubkey, compute_provider, data_provider) | EmissionCheckpoint dict |
| REPORT_SCHEMA_PROVIDER     | (contract)                                             | report schema dict |
"""

import importlib
import inspect
import math
from collections.abc import Callable
from fractions import Fraction
from functools import cache
from typing import Any, Literal

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLOT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "RAW_INPUT_PROVIDER": ("config", "now"),
    "INFERENCE_INPUT_BUILDER": ("raw_input",),
    "INFERENCE_OUTPUT_VALIDATOR": ("output",),
    "PREDICTION_SCOPE_BUILDER": ("config", "raw_input"),
    "PREDICT_CALL_BUILDER": ("scope", "inference_input"),
    "GROUND_TRUTH_RESOLVER": ("input",),
    "SCORING_FUNCTION": ("prediction", "ground_truth"),
    "MODEL_SCORE_AGGREGATOR": ("results",),
    "LEADERBOARD_RANKER": ("entries", "aggregation"),
    "EMISSION_BUILDER": ("ranking", "crunch_pubkey", "compute_provider", "data_provider"),
    "REPORT_SCHEMA_PROVIDER": ("contract",),
}


class ContractError(Exception):
    """A contract or callable path that cannot be used; the message names variable and path."""


# --- Starter payload types ---------------------------------------------------------------


class StarterRawInput(BaseModel):
    """What the tape gives the predict worker: the newest window of records of one subject."""

    model_config = ConfigDict(extra="allow")

    subject: str
    as_of: str | None = None  # ISO time of the newest record the models see
    records: list[dict[str, Any]] = Field(default_factory=list)


class StarterOutput(BaseModel):
    """A model's answer: the probability that the price is higher after the horizon."""

    model_config = ConfigDict(extra="forbid", strict=True)

    p_up: float = Field(ge=0.0, le=1.0)

    @field_validator("p_up")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("p_up must be a finite number")
        return value


class StarterGroundTruth(BaseModel):
    """What really happened over the horizon."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    entry_price: float
    resolved_price: float
    return_: float = Field(alias="return")
    direction_up: bool


class StarterScore(BaseModel):
    """One prediction's score. `value` is what windows and checkpoints aggregate."""

    model_config = ConfigDict(extra="allow")

    value: float

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("score value must be a finite number")
        return value


# --- Contract ----------------------------------------------------------------------------


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = "BTC"
    horizon_seconds: int = Field(default=300, ge=0)
    step_seconds: int = Field(default=60, ge=1)


class AggregationWindow(BaseModel):
    """A trailing window. `hours` may be fractional (e.g. 0.05 = 3 minutes, for demos)."""

    model_config = ConfigDict(extra="forbid")

    hours: float = Field(gt=0)

    @property
    def label(self) -> str:
        """ "24 h", "90 min" or "30 s"."""
        seconds = self.hours * 3600
        if seconds >= 3600 and float(self.hours).is_integer():
            return f"{self.hours:g} h"
        if seconds >= 60 and float(seconds / 60).is_integer():
            return f"{seconds / 60:g} min"
        return f"{seconds:g} s"


class Aggregation(BaseModel):
    """Leaderboard windows and ranking. `value_field` is the score field that is averaged."""

    model_config = ConfigDict(extra="forbid")

    windows: dict[str, AggregationWindow]
    value_field: str = "value"
    ranking_key: str
    ranking_direction: Literal["asc", "desc"]

    @field_validator("ranking_key")
    @classmethod
    def _key_is_a_window(cls, key: str, info) -> str:
        windows = info.data.get("windows") or {}
        if key not in windows:
            raise ValueError(f"ranking_key {key!r} is not one of the windows {sorted(windows)}")
        return key


class EmissionTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_rank: int = Field(ge=1)
    last_rank: int = Field(ge=1)
    pct_each: float = Field(ge=0, le=100)


class TopN(BaseModel):
    """Top-N payout: payout positions 1..n weigh exp(alpha / position), normalised to 100 %."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=1)
    alpha: float = Field(ge=0, allow_inf_nan=False)


class EmissionPart(BaseModel):
    """One part of a split emission: its own ranking over the scores of `scope_keys`, its own
    payout (summing to 100 %), weighted by `weight_pct` in the combined list."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    weight_pct: float = Field(gt=0, le=100, allow_inf_nan=False)
    scope_keys: list[str] = Field(min_length=1)


class EmissionSettings(BaseModel):
    """How a checkpoint's ranking becomes the reward split (docs/rules.md).

    `shape`: "tiers" (the `tiers` table) or "top_n" (exp(alpha / position) over the first n);
    `split`: optional parts (weights adding up to 100), each ranked and paid on its own scopes.
    """

    model_config = ConfigDict(extra="forbid")

    tiers: list[EmissionTier] = Field(default_factory=list)
    shape: Literal["tiers", "top_n"] = "tiers"
    top_n: TopN | None = None
    split: list[EmissionPart] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "EmissionSettings":
        if self.shape == "top_n" and self.top_n is None:
            raise ValueError('shape "top_n" needs top_n: {n, alpha}')
        if self.split:
            names = [part.name for part in self.split]
            if len(set(names)) != len(names):
                raise ValueError(f"split part names must be unique, got {names}")
            total = sum(Fraction(str(part.weight_pct)) for part in self.split)
            if total != 100:
                raise ValueError(f"split weight_pct must add up to 100, got {float(total):g}")
        return self


class Eligibility(BaseModel):
    """Who may be paid (docs/rules.md); applied by one function to the leaderboard and checkpoints.

    Defaults pay every ranked model (today's behaviour). A model flagged `is_benchmark` is never paid.
    """

    model_config = ConfigDict(extra="forbid")

    min_scored_predictions: int = Field(default=0, ge=0)
    best_model_per_cruncher: bool = False
    benchmark_cutoff: bool = False


class MissingPredictionPolicy(BaseModel):
    """How FAILED and ABSENT predictions count: the worst score on the Input, excluded, or fixed."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["worst", "exclude", "fixed"] = "worst"
    value: float | None = None


class ScorePassSettings(BaseModel):
    """A pass over each Input's scored predictions after scoring (scoring/postprocess.py):
    `none`, `cap` (raw values capped at `cap_percentile` on the worse side) or `normalise`
    (best 1, the worst `worst_fraction` 0, linear between; after the cap when one is given).
    `raw_direction` is the scoring function's (default: the ranking direction); normalised
    values are "higher is better", so normalising needs `ranking_direction="desc"`.
    SCORE_PASS and SCORE_PASS_CAP_PERCENTILE override mode and cap."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "cap", "normalise"] = "none"
    cap_percentile: float | None = Field(default=None, gt=0, le=100)
    worst_fraction: float = Field(default=0.05, ge=0, lt=1)
    raw_direction: Literal["asc", "desc"] | None = None


class CrunchContract(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    name: str
    raw_input_type: type[BaseModel]
    output_type: type[BaseModel]
    ground_truth_type: type[BaseModel]
    score_type: type[BaseModel]
    scope: Scope = Scope()
    aggregation: Aggregation
    emission: EmissionSettings
    eligibility: Eligibility = Eligibility()
    missing_prediction_policy: MissingPredictionPolicy = MissingPredictionPolicy()
    score_pass: ScorePassSettings = ScorePassSettings()
    callables: dict[str, str | None]
    # Models may be ticked as tape records arrive, between slots (EVENT_TICKS): each tick is the
    # whole model input of a config, and models keep what they are ticked with per `symbol` (as
    # the starter base class does), so a window sent ahead equals one sent at slot time.
    # False for competitions whose models accumulate state across ticks in order.
    event_ticks: bool = True

    @field_validator("callables")
    @classmethod
    def _known_slots(cls, callables: dict[str, str | None]) -> dict[str, str | None]:
        unknown = set(callables) - set(SLOT_PARAMETERS)
        if unknown:
            raise ValueError(f"unknown callable slots {sorted(unknown)}; known: {sorted(SLOT_PARAMETERS)}")
        return callables


STARTER_CONTRACT = CrunchContract(
    name="Starter BTC direction",
    raw_input_type=StarterRawInput,
    output_type=StarterOutput,
    ground_truth_type=StarterGroundTruth,
    score_type=StarterScore,
    aggregation=Aggregation(
        windows={
            "score_recent": AggregationWindow(hours=24),
            "score_steady": AggregationWindow(hours=72),
            "score_anchor": AggregationWindow(hours=168),
        },
        value_field="value",
        ranking_key="score_recent",
        ranking_direction="asc",  # Brier score: lower is better
    ),
    emission=EmissionSettings(
        tiers=[
            EmissionTier(first_rank=1, last_rank=1, pct_each=35),
            EmissionTier(first_rank=2, last_rank=5, pct_each=10),
            EmissionTier(first_rank=6, last_rank=10, pct_each=5),
        ]
    ),
    callables={
        "RAW_INPUT_PROVIDER": "predictions.defaults:tape_window_input",
        "INFERENCE_INPUT_BUILDER": "predictions.defaults:build_inference_input",
        "INFERENCE_OUTPUT_VALIDATOR": "predictions.defaults:validate_output",
        "PREDICTION_SCOPE_BUILDER": "predictions.defaults:build_prediction_scope",
        "PREDICT_CALL_BUILDER": "predictions.defaults:build_predict_call",
        "GROUND_TRUTH_RESOLVER": "scoring.ground_truth:resolve_ground_truth",
        "SCORING_FUNCTION": "scoring.functions:brier_score",
        "MODEL_SCORE_AGGREGATOR": "scoring.aggregation:aggregate_snapshot",
        "LEADERBOARD_RANKER": "scoring.ranking:rank_entries",
        "EMISSION_BUILDER": "checkpoints.emission:build_tiered_emission",
        "REPORT_SCHEMA_PROVIDER": "reports.schema:default_report_schema",
    },
)


# --- Resolution ----------------------------------------------------------------------------


def import_path(path: str, *, variable: str) -> Any:
    """Import `module:attr` (or `module.attr`); errors name the variable and the path."""
    if not path or not isinstance(path, str):
        raise ContractError(f"{variable}: empty path")
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
    else:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path:
        raise ContractError(f"{variable}={path!r}: expected 'module:attribute'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ContractError(f"{variable}={path!r}: cannot import module {module_name!r} ({exc})") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ContractError(f"{variable}={path!r}: module {module_name!r} has no attribute {attr_path!r}") from exc
    return obj


def slot_path(slot: str) -> tuple[str | None, str]:
    """The configured path of a slot and where it came from (the env var or the contract)."""
    override = settings.CALLABLE_OVERRIDES.get(slot) or ""
    if override:
        return override, slot
    return get_contract().callables.get(slot), f"CRUNCH_CONTRACT.callables[{slot}]"


def check_signature(func: Callable, *, slot: str, variable: str, path: str) -> None:
    """Raise ContractError unless `func` can be called with the slot's positional parameters."""
    if not callable(func):
        raise ContractError(f"{variable}={path!r}: {type(func).__name__} object is not callable")
    expected = SLOT_PARAMETERS[slot]
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # builtins without a signature: accept
    try:
        signature.bind(*expected)
    except TypeError as exc:
        raise ContractError(
            f"{variable}={path!r}: signature {signature} cannot be called as ({', '.join(expected)}): {exc}"
        ) from exc


def resolve_slot(slot: str) -> Callable | None:
    """Import and check one slot. Returns None when the contract leaves the slot unwired."""
    path, variable = slot_path(slot)
    if path is None:
        return None
    func = import_path(path, variable=variable)
    check_signature(func, slot=slot, variable=variable, path=path)
    return func


@cache
def get_contract() -> CrunchContract:
    """The configured contract (`CRUNCH_CONTRACT`), imported once per process."""
    contract = import_path(settings.CRUNCH_CONTRACT, variable="CRUNCH_CONTRACT")
    if not isinstance(contract, CrunchContract):
        raise ContractError(
            f"CRUNCH_CONTRACT={settings.CRUNCH_CONTRACT!r}: expected a CrunchContract, got {type(contract).__name__}"
        )
    return contract


@cache
def get_callable(slot: str) -> Callable:
    """The callable wired into `slot`; raises ContractError if it is missing or unusable."""
    if slot not in SLOT_PARAMETERS:
        raise ContractError(f"unknown callable slot {slot!r}")
    func = resolve_slot(slot)
    if func is None:
        raise ContractError(f"{slot}: no callable configured (set {slot} or the contract's default)")
    return func


def competition_name() -> str:
    return settings.CRUNCH_NAME or get_contract().name


@receiver(setting_changed)
def _clear_caches(*, setting: str, **_: Any) -> None:
    if setting in ("CRUNCH_CONTRACT", "CALLABLE_OVERRIDES"):
        get_contract.cache_clear()
        get_callable.cache_clear()
