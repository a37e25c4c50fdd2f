"""`manage.py replay --from T1 --to T2 [--set SLOT=module:attr ...] [--reresolve] [--json]`."""

import getpass
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from replay.formatting import report_text
from replay.models import ReplayKind
from replay.services import ReplayError, parse_overrides, replay_range


def _time(value: str):
    parsed = parse_datetime(value.replace("Z", "+00:00"))
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"{value!r}: expected an ISO time with its offset (e.g. 2026-12-01T00:00:00Z)")
    return parsed


class Command(BaseCommand):
    help = (
        "Re-run ground truth, scoring, snapshots, leaderboards and checkpoints for a past range from stored "
        "rows, in a scratch store (the live tables are only read), and compare with what is stored. With "
        "--set it is a what-if: the ranks and rewards another slot would give. Exit 1 when a replay with "
        "the live configuration differs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="ISO start (inclusive), with offset.")
        parser.add_argument("--to", dest="end", required=True, help="ISO end (exclusive), with offset.")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SLOT=module:attr")
        parser.add_argument("--contract", default="", help="Another CRUNCH_CONTRACT path (a what-if).")
        parser.add_argument("--reresolve", action="store_true", help="Re-resolve ground truth from the tape.")
        parser.add_argument("--batch", type=int, default=500, help="Inputs per score batch (as run_score).")
        parser.add_argument(
            "--coalesce",
            action="store_true",
            help="Score the live units between two leaderboards/builds in one go (faster; Score.scored_at not compared).",
        )
        parser.add_argument("--keep-scratch", action="store_true", help="Keep the scratch store to inspect it.")
        parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")

    def handle(self, *args, **options):
        try:
            overrides = parse_overrides(options["overrides"])
            if options["contract"]:
                overrides["CRUNCH_CONTRACT"] = options["contract"]
            row = replay_range(
                start=_time(options["start"]),
                end=_time(options["end"]),
                overrides=overrides,
                reresolve=options["reresolve"],
                keep_scratch=options["keep_scratch"],
                batch=options["batch"],
                coalesce=options["coalesce"],
                actor=f"cli:{getpass.getuser()}",
            )
        except ReplayError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps({"report_id": row.pk, "exit_code": row.exit_code, **row.report}, indent=1))
        else:
            self.stdout.write(report_text(row.report, what_if=row.kind == ReplayKind.WHAT_IF))
            self.stdout.write(f"  stored as replay report {row.pk}")
        if row.exit_code:
            raise SystemExit(row.exit_code)
