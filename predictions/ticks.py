"""Ticks as data arrives (docs/predict.md "Event ticks").

Between slots, `run_predict` sends each active config's model input (RAW_INPUT_PROVIDER, then
INFERENCE_INPUT_BUILDER: the same payload a slot would send) to every model's `tick()` as soon as
new tape records change it. At the slot the cycle builds the input as always and, when the models
were already ticked with exactly that input (same content, and no model joined or was redeployed
since), calls only `predict()`; otherwise it ticks first, as without event ticks. Either way the
models predict having been ticked last with the Input's own `raw_data`, and `Input.ticks` says
which window that was, when it was sent and how many ticks went ahead since the previous slot.

The state is this process's: which window each config last ticked its models with, through this
process's gateway. Calls go through the gateway, which never calls a model while a call of it is
still running (local: a per-model lock; remote: one call at a time), and the worker makes event
ticks and cycles one after the other in one thread, so a tick and a predict never overlap for a
model. An event-tick pass is bounded by the time left before the next slot, so it never holds up a
predict; a model still busy with its tick at the slot answers TIMEOUT ("Server busy") there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from predictions.gateway.base import CallStatus, ModelCallResult, ModelGateway
from predictions.models import PredictionConfig
from predictions.selectors import active_configs, seconds_until_next_slot

log = logging.getLogger("predictions.ticks")

EVENT_TICKS_MODES = ("auto", "on", "off")
# An event-tick pass ends this long before the next slot is due, and sends nothing with less
# time than MIN_TICK_SECONDS left (the slot then ticks itself).
SLOT_MARGIN_SECONDS = 0.2
MIN_TICK_SECONDS = 0.05
FAILURE_LOG_EVERY = 100  # a model whose event ticks keep failing: one warning per this many


def event_ticks_enabled(gateway: ModelGateway, *, mode: str | None = None) -> bool:
    """EVENT_TICKS, or `mode` (auto: on for the local gateway, off for remote), unless the
    contract forbids them."""
    from coordinator_site.contract import get_contract

    mode = mode or settings.EVENT_TICKS
    if mode not in EVENT_TICKS_MODES:
        raise ImproperlyConfigured(f"EVENT_TICKS={mode!r}: expected one of {', '.join(EVENT_TICKS_MODES)}")
    if mode == "off" or not get_contract().event_ticks:
        return False
    return mode == "on" or gateway.name == "local"


def input_fingerprint(inference_input: Any) -> str:
    """Identifies one model input by content (what decides whether the models already have it)."""
    text = json.dumps(inference_input, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tick_window(raw_input: dict[str, Any]) -> dict[str, Any]:
    """The range of tape records a model input holds: first and last `ts_event` and the count
    (empty when the RAW_INPUT_PROVIDER's input has no `records` list)."""
    records = raw_input.get("records")
    if not isinstance(records, list) or not records:
        return {}
    first, last = records[0], records[-1]
    if not isinstance(first, dict) or not isinstance(last, dict):
        return {"count": len(records)}
    return {"first_ts": first.get("ts_event"), "last_ts": last.get("ts_event"), "count": len(records)}


@dataclass(frozen=True)
class TickedInput:
    """One model input sent to every connected model's `tick()`."""

    fingerprint: str
    window: dict[str, Any]
    sent_at: datetime
    deployments: frozenset[str]


@dataclass
class ConfigTicks:
    """What one config last ticked its models with, and the event ticks since its last slot."""

    last: TickedInput | None = None
    ahead: int = 0  # event ticks sent since the config's previous slot
    since_ts: str | None = None  # newest record of the window at the previous slot


@dataclass
class TickTracker:
    """Event ticks of one `run_predict` process (see the module docstring)."""

    gateway: ModelGateway
    configs: dict[int, ConfigTicks] = field(default_factory=dict)
    # model_id -> {"FAILED": n, "TIMEOUT": n}: event ticks that did not succeed, per model
    failures: dict[str, dict[str, int]] = field(default_factory=dict)

    def _deployments(self) -> frozenset[str]:
        return frozenset(identity.deployment_id for identity in self.gateway.connected_models())

    def tick_new_records(self, *, now: datetime | None = None) -> dict[str, int]:
        """Between slots: tick the models with each active config's model input if it changed
        since they were last ticked with it. Never runs into the next slot (the whole pass is
        bounded by the time left before it); an input that cannot be built is logged and
        skipped, a model whose tick fails or times out is counted. Returns counts."""
        from coordinator_site.contract import get_callable, get_contract

        now = now or timezone.now()
        counts: dict[str, int] = {}
        budget = float(getattr(self.gateway, "timeout", settings.MODEL_CALL_TIMEOUT_SECONDS))
        due = seconds_until_next_slot(now=now)
        if due is not None:
            budget = min(budget, due - SLOT_MARGIN_SECONDS)
        if budget < MIN_TICK_SECONDS:
            return counts  # the slot is (nearly) due: it ticks what is new itself
        deadline = time.monotonic() + budget
        contract = get_contract()
        raw_input_provider = get_callable("RAW_INPUT_PROVIDER")
        input_builder = get_callable("INFERENCE_INPUT_BUILDER")
        deployments = self._deployments()
        sent: dict[str, TickedInput] = {}  # configs with the same input share one tick per pass
        for config in active_configs():
            state = self.configs.setdefault(config.pk, ConfigTicks())
            try:
                raw_input = raw_input_provider(config, now)
                if raw_input is None:
                    continue
                contract.raw_input_type.model_validate(raw_input)
                inference_input = input_builder(raw_input)
                fingerprint = input_fingerprint(inference_input)
            except Exception as exc:
                log.warning("%s: no event tick (model input: %s: %s)", config.scope_key, type(exc).__name__, exc)
                counts["event_tick_input_errors"] = counts.get("event_tick_input_errors", 0) + 1
                continue
            if (
                state.last is not None
                and state.last.fingerprint == fingerprint
                and deployments <= state.last.deployments
            ):
                continue
            ticked = sent.get(fingerprint)
            if ticked is None:
                remaining = deadline - time.monotonic()
                if remaining < MIN_TICK_SECONDS:
                    counts["event_ticks_deferred"] = counts.get("event_ticks_deferred", 0) + 1
                    continue
                sent_at = timezone.now()
                results = self.gateway.call("tick", [inference_input], timeout=remaining)
                self._count(results, counts, config=config)
                ticked = sent[fingerprint] = TickedInput(fingerprint, tick_window(raw_input), sent_at, deployments)
                counts["event_ticks"] = counts.get("event_ticks", 0) + 1
            state.last = ticked
            state.ahead += 1
        return counts

    def slot_tick(
        self, *, config: PredictionConfig, raw_input: dict[str, Any], inference_input: Any
    ) -> tuple[list[ModelCallResult] | None, dict[str, Any]]:
        """At the slot: tick only when the models do not have this input yet (it changed since
        the last tick, or a model joined or was redeployed). Returns the tick results (None when
        no tick was needed) and the `Input.ticks` record."""
        state = self.configs.setdefault(config.pk, ConfigTicks())
        fingerprint = input_fingerprint(inference_input)
        deployments = self._deployments()
        results = None
        last = state.last
        if last is not None and last.fingerprint == fingerprint and deployments <= last.deployments:
            mode = "event"
        else:
            mode = "slot"
            sent_at = timezone.now()
            results = self.gateway.call("tick", [inference_input])
            last = state.last = TickedInput(fingerprint, tick_window(raw_input), sent_at, deployments)
        record = {
            "mode": mode,
            **last.window,
            "sent_at": last.sent_at.isoformat(),
            "ahead": state.ahead,
            "since_ts": state.since_ts,
        }
        state.ahead = 0
        state.since_ts = last.window.get("last_ts")
        return results, record

    def _count(self, results: list[ModelCallResult], counts: dict[str, int], *, config: PredictionConfig) -> None:
        for result in results:
            if result.status == CallStatus.SUCCESS:
                continue
            key = f"event_tick_{result.status.lower()}"
            counts[key] = counts.get(key, 0) + 1
            per_model = self.failures.setdefault(result.model_id, {})
            per_model[result.status] = n = per_model.get(result.status, 0) + 1
            if n == 1 or n % FAILURE_LOG_EVERY == 0:
                log.warning(
                    "model %s: event tick %s (%s; %d so far, %s)",
                    result.model_id,
                    result.status,
                    result.detail,
                    n,
                    config.scope_key,
                )


def slot_tick_record(raw_input: dict[str, Any]) -> dict[str, Any]:
    """`Input.ticks` without event ticks: the models were ticked with the whole input in the cycle."""
    return {"mode": "slot", **tick_window(raw_input), "sent_at": timezone.now().isoformat()}
