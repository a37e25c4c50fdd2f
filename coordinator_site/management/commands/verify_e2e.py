"""`manage.py verify_e2e [--timeout S] [--checkpoint]`: is the whole pipeline producing output?

Waits until the database holds a fresh feed record, scored predictions and a leaderboard (and a
checkpoint with `--checkpoint`), prints what it found, and exits non-zero naming what is still
missing when the timeout passes. Reads the database directly, so it works against any node
sharing the same DATABASE_URL / SQLITE_PATH (the embedded node or the compose stack).
"""

import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.utils import timezone


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str


def pipeline_findings(*, fresh_seconds: float, min_scored: int, want_checkpoint: bool) -> list[Finding]:
    """One Finding per stage: feed (fresh record), predictions (scored), leaderboard, [checkpoint]."""
    from checkpoints.models import Checkpoint
    from feeds.models import FeedRecord
    from predictions.choices import PredictionStatus
    from predictions.models import Prediction
    from scoring.models import Leaderboard, Score

    now = timezone.now()
    findings = []

    newest = FeedRecord.objects.order_by("-ts_ingested").first()
    if newest is None:
        findings.append(Finding("feed", False, "no feed record yet"))
    else:
        age = (now - newest.ts_ingested).total_seconds()
        findings.append(
            Finding(
                "feed",
                newest.ts_ingested >= now - timedelta(seconds=fresh_seconds),
                f"newest record {newest.source}/{newest.subject}/{newest.kind}/{newest.granularity} "
                f"at {newest.ts_event.isoformat()}, ingested {age:.0f}s ago (fresh = within {fresh_seconds:.0f}s)",
            )
        )

    scored = Prediction.objects.filter(status=PredictionStatus.SCORED).count()
    total = Prediction.objects.count()
    last_score = Score.objects.order_by("-scored_at").values_list("scored_at", flat=True).first()
    findings.append(
        Finding(
            "predictions",
            scored >= min_scored,
            f"{scored} scored of {total} predictions"
            + (f", last scored at {last_score.isoformat()}" if last_score else "")
            + (f" (need {min_scored})" if scored < min_scored else ""),
        )
    )

    board = Leaderboard.objects.order_by("-created_at", "-id").first()
    if board is None or not board.entries:
        findings.append(Finding("leaderboard", False, "no leaderboard with entries yet"))
    else:
        top = board.entries[0]
        findings.append(
            Finding(
                "leaderboard",
                True,
                f"{len(board.entries)} models as of {board.created_at.isoformat()}; rank {top.get('rank')}: "
                f"{top.get('model_name') or top.get('model_id')}",
            )
        )

    if want_checkpoint:
        checkpoint = Checkpoint.objects.order_by("-period_end", "-id").first()
        if checkpoint is None:
            findings.append(Finding("checkpoint", False, "no checkpoint yet"))
        else:
            findings.append(
                Finding(
                    "checkpoint",
                    True,
                    f"#{checkpoint.pk} [{checkpoint.period_start.isoformat()}, {checkpoint.period_end.isoformat()}) "
                    f"{checkpoint.status}, {len(checkpoint.ranking)} ranked, root {checkpoint.merkle_root[:16] or '-'}",
                )
            )
    return findings


class Command(BaseCommand):
    help = "Wait until feed, scored predictions and a leaderboard (and a checkpoint) exist; exit 1 if not."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=120.0, help="Seconds to wait (default 120).")
        parser.add_argument("--checkpoint", action="store_true", help="Also wait for a checkpoint.")
        parser.add_argument(
            "--fresh-seconds", type=float, default=120.0, help="A feed record ingested within this is fresh."
        )
        parser.add_argument("--min-scored", type=int, default=1, help="Scored predictions needed (default 1).")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between checks.")

    def handle(self, *args, **options) -> None:
        if options["timeout"] < 0 or options["interval"] <= 0 or options["min_scored"] < 1:
            raise CommandError("--timeout must be >= 0, --interval > 0 and --min-scored >= 1")
        deadline = time.monotonic() + options["timeout"]
        while True:
            findings = pipeline_findings(
                fresh_seconds=options["fresh_seconds"],
                min_scored=options["min_scored"],
                want_checkpoint=options["checkpoint"],
            )
            if all(f.ok for f in findings) or time.monotonic() >= deadline:
                break
            time.sleep(options["interval"])
            close_old_connections()  # a long wait must survive a database restart
        for finding in findings:
            self.stdout.write(f"{'ok' if finding.ok else 'MISSING':<8}{finding.name}: {finding.detail}")
        missing = [f.name for f in findings if not f.ok]
        if missing:
            raise CommandError(f"verify_e2e: missing after {options['timeout']:.0f}s: {', '.join(missing)}")
        self.stdout.write(self.style.SUCCESS("verify_e2e: the pipeline is producing output end to end"))
