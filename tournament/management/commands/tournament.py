"""`manage.py tournament open|infer|upload-truth|rescore|cancel|status` (docs/tournament.md).

The command only parses and prints: every change goes through tournament.services, the same
services the admin and the API use. Inference and scoring normally run in run_predict and
run_score; `infer` asks the models here, once, for operators without a running run_predict.
"""

import getpass
import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from coordinator_site.transitions import InvalidTransition
from tournament.models import Round
from tournament.selectors import round_report
from tournament.services import (
    RoundError,
    cancel_round,
    check_truth_uploadable,
    open_round,
    parse_samples,
    parse_truth_file,
    request_rescore,
    upload_ground_truth,
)


class Command(BaseCommand):
    help = "Open a tournament round, upload its ground truth, re-score or cancel it, show it."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        opener = sub.add_parser(
            "open", help="Open a round from a round file (JSON: samples with sample_id, features, part)."
        )
        opener.add_argument("file", help="Round file: {round_id?, out_of_sample_weight?, samples: [...]}.")
        opener.add_argument("--round-id", default="", help="Round id (default: the file's round_id).")
        opener.add_argument("--weight", type=float, default=None, help="Out-of-sample weight in [0, 1].")
        infer = sub.add_parser("infer", help="Ask the models about every remaining sample now (no run_predict needed).")
        infer.add_argument("round_id")
        truth = sub.add_parser("upload-truth", help="Upload ground truth (CSV or JSON keyed by sample_id).")
        truth.add_argument("round_id")
        truth.add_argument("file")
        rescore = sub.add_parser("rescore", help="Score a SCORED round again (its scores are replaced).")
        rescore.add_argument("round_id")
        rescore.add_argument("--reason", required=True)
        cancel = sub.add_parser("cancel", help="Cancel a round that is not scored.")
        cancel.add_argument("round_id")
        cancel.add_argument("--reason", required=True)
        status = sub.add_parser("status", help="Print a round's lifecycle, upload report and results as JSON.")
        status.add_argument("round_id")
        for each in (opener, truth, rescore, cancel):
            each.add_argument("--actor", default="", help="Who does it (default: the system user).")

    def handle(self, *args, action, **options):
        actor = options.get("actor") or f"cli:{getpass.getuser()}"
        try:
            if action == "open":
                self._open(options, actor)
            elif action == "infer":
                self._infer(self._round(options["round_id"]))
            elif action == "upload-truth":
                path = Path(options["file"])
                round_ = self._round(options["round_id"])
                check_truth_uploadable(round_)
                truth = parse_truth_file(self._read(path), name=path.name)
                round_ = upload_ground_truth(round_=round_, truth=truth, actor=actor)
                report = round_.truth_report
                self.stdout.write(
                    f"round {round_.round_id}: ground truth for {report['accepted']}/{report['samples']} sample(s) "
                    f"stored; missing {report['missing']}, extra {report['extra']}, invalid {sorted(report['invalid'])}"
                )
            elif action == "rescore":
                round_ = request_rescore(round_=self._round(options["round_id"]), reason=options["reason"], actor=actor)
                self.stdout.write(f"round {round_.round_id}: {round_.status}; run_score scores it again")
            elif action == "cancel":
                round_ = cancel_round(round_=self._round(options["round_id"]), reason=options["reason"], actor=actor)
                self.stdout.write(f"round {round_.round_id}: {round_.status}")
            else:
                report = round_report(self._round(options["round_id"]))
                self.stdout.write(json.dumps(report, cls=DjangoJSONEncoder, indent=2))
        except RoundError as exc:
            raise CommandError("\n".join([str(exc), *exc.problems])) from exc
        except InvalidTransition as exc:
            raise CommandError(str(exc)) from exc

    def _open(self, options, actor):
        path = Path(options["file"])
        try:
            data = json.loads(self._read(path))
        except ValueError as exc:
            raise CommandError(f"{path}: not valid JSON: {exc}") from exc
        round_id = options["round_id"] or (data.get("round_id", "") if isinstance(data, dict) else "")
        weight = options["weight"]
        if weight is None and isinstance(data, dict):
            weight = data.get("out_of_sample_weight")
        meta = data.get("meta") if isinstance(data, dict) and isinstance(data.get("meta"), dict) else None
        round_, created = open_round(
            round_id=round_id, samples=parse_samples(data), out_of_sample_weight=weight, meta=meta, actor=actor
        )
        verb = "opened" if created else "already open with the same samples"
        self.stdout.write(f"round {round_.round_id} {verb}: {round_.sample_count} sample(s), status {round_.status}")

    def _infer(self, round_):
        from django.conf import settings

        from predictions.gateway import build_gateway
        from tournament.services import infer_next_round

        gateway = build_gateway(settings.MODEL_GATEWAY)
        gateway.start()
        deadline = time.monotonic() + 120
        while not gateway.ready and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            while infer_next_round(gateway=gateway, worker_id=f"cli:{getpass.getuser()}", round_pk=round_.pk):
                round_.refresh_from_db()
                if round_.status != "OPEN":
                    break
        finally:
            gateway.close()
        round_.refresh_from_db()
        self.stdout.write(f"round {round_.round_id}: {round_.status}")

    @staticmethod
    def _round(round_id: str) -> Round:
        try:
            return Round.objects.get(round_id=round_id)
        except Round.DoesNotExist as exc:
            raise CommandError(f"no round {round_id!r}") from exc

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{path}: {exc}") from exc
