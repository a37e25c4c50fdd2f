"""`manage.py verify_checkpoint [ID ...|--all]`: recompute checkpoints from stored rows alone."""

from django.core.management.base import BaseCommand, CommandError

from checkpoints.models import Checkpoint
from checkpoints.verification import record_verification


class Command(BaseCommand):
    help = (
        "Recompute each checkpoint's ranking, emission, cli-format and Merkle root from the stored rows "
        "and check every leaf against its hash and its live snapshot. Exit 1 naming each difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Checkpoint ids (default: the newest).")
        parser.add_argument("--all", action="store_true", dest="every", help="Every checkpoint.")

    def handle(self, *args, ids, every, **options):
        checkpoints = Checkpoint.objects.order_by("period_start", "id")
        if ids:
            checkpoints = checkpoints.filter(pk__in=ids)
            missing = set(ids) - set(checkpoints.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no checkpoint with id {', '.join(map(str, sorted(missing)))}")
        elif not every:
            checkpoints = Checkpoint.objects.order_by("-period_end", "-id")[:1]
        failed = 0
        for checkpoint in checkpoints:
            verification = record_verification(checkpoint).meta["verification"]
            label = f"checkpoint {checkpoint.pk} [{checkpoint.period_start.isoformat()}, {checkpoint.period_end.isoformat()})"
            if verification["ok"]:
                self.stdout.write(f"ok   {label}")
            else:
                failed += 1
                self.stdout.write(f"FAIL {label}")
                for problem in verification["problems"]:
                    self.stdout.write(f"     - {problem}")
            for note in verification["notes"]:
                self.stdout.write(f"     note: {note}")
        if failed:
            raise CommandError(f"{failed} checkpoint(s) differ from what the stored rows give")
