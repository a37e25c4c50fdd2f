"""`manage.py run_predict`: serve due prediction configs through the model gateway (DESIGN.md §7)."""

import os
import socket
import time

from django.conf import settings
from django.utils import timezone

from coordinator_site import metrics, wakeup
from coordinator_site.units import run_registered_units
from coordinator_site.worker import UnitResult, WorkerCommand
from predictions.gateway import build_gateway
from predictions.selectors import seconds_until_next_slot
from predictions.services import run_predict_cycle
from predictions.ticks import TickTracker, event_ticks_enabled


class Command(WorkerCommand):
    help = "Ask every model for a prediction on each due config; one cycle per unit of work."
    worker_name = "run_predict"
    default_sleep = 0.5
    wakeup_channels = (wakeup.CONFIGS,)

    def next_due_seconds(self) -> float | None:
        return seconds_until_next_slot(now=timezone.now())

    @property
    def unit_budget_seconds(self) -> float:
        # One cycle: `tick` then `predict` to every model (each up to the call timeout), then the write.
        return 2 * settings.MODEL_CALL_TIMEOUT_SECONDS + 5.0

    def add_worker_arguments(self, parser) -> None:
        parser.add_argument(
            "--gateway", choices=["local", "remote"], default=None, help="Override MODEL_GATEWAY for this run."
        )
        parser.add_argument(
            "--event-ticks",
            choices=["auto", "on", "off"],
            default=None,
            help="Override EVENT_TICKS for this run (tick models as tape records arrive).",
        )
        parser.add_argument(
            "--wait-ready",
            type=float,
            default=0.0,
            help="Seconds to wait at start for the gateway to be ready (remote init runs in the background).",
        )

    def setup(self, options: dict) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.gateway = build_gateway(options["gateway"] or settings.MODEL_GATEWAY)
        self.gateway.start()
        enabled = event_ticks_enabled(self.gateway, mode=options["event_ticks"])
        self.ticks = TickTracker(self.gateway) if enabled else None
        if self.ticks is not None:
            # Woken by new tape records (PostgreSQL), else the usual poll every --sleep.
            self.wakeup_channels = (*self.wakeup_channels, wakeup.TAPE)
        deadline = time.monotonic() + options["wait_ready"]
        while not self.gateway.ready and time.monotonic() < deadline and not self.stop:
            self.stop.sleep(0.1)
        self.log.info(
            "model gateway %s %s, %d model(s) connected, event ticks %s",
            self.gateway.name,
            "ready" if self.gateway.ready else "not ready yet",
            len(self.gateway.connected_models()),
            "on" if self.ticks is not None else "off",
        )

    def teardown(self) -> None:
        gateway = getattr(self, "gateway", None)
        if gateway is not None:
            gateway.close()

    def run_unit(self, *, batch: int) -> UnitResult:
        self.gateway.refresh()
        if not self.gateway.ready:
            # Never ask models before the gateway is up: every model would count ABSENT.
            return UnitResult(found=False, counts={"gateway_not_ready": 1})
        started_at = timezone.now()
        report = run_predict_cycle(gateway=self.gateway, worker_id=self.worker_id, ticks=self.ticks)
        # Units other apps registered for this worker (a tournament round's inference, in chunks
        # between live slots): coordinator_site/units.py.
        extra = run_registered_units("run_predict", gateway=self.gateway, worker_id=self.worker_id)
        if report is None:
            # Between slots: send what the tape brought since the last tick (bounded by the next slot).
            counts = self.ticks.tick_new_records() if self.ticks is not None else {}
            return UnitResult(found=bool(extra.get("extra_units_found")), counts={**counts, **extra})
        metrics.predict_slot_served(
            report.scope_key,
            lateness_seconds=(started_at - report.scheduled_for).total_seconds(),
            missed=report.counts.get("missed_slots", 0),
        )
        timings = " ".join(f"{k}={v:.1f}ms" for k, v in report.timings_ms.items())
        self.log.debug(
            "%s slot %s input=%s %s%s",
            report.scope_key,
            report.scheduled_for.isoformat(),
            report.input_id,
            timings,
            f" skipped: {report.skipped}" if report.skipped else "",
        )
        return UnitResult(found=True, counts={"cycles": 1, **report.counts, **extra})
