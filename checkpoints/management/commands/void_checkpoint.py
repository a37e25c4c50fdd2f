"""`manage.py void_checkpoint ID --reason ...`: void a PENDING checkpoint; its period is built again."""

import getpass

from django.core.management.base import BaseCommand, CommandError

from checkpoints.models import Checkpoint
from checkpoints.services import checkpoint_void
from coordinator_site.transitions import InvalidTransition


class Command(BaseCommand):
    help = "Void a PENDING checkpoint (kept as history, seal lifted); run_checkpoint builds its period again."

    def add_arguments(self, parser):
        parser.add_argument("id", type=int)
        parser.add_argument("--reason", required=True, help="Why it is voided (recorded).")
        parser.add_argument("--actor", default="", help="Who voids it (default: the system user).")

    def handle(self, *args, id, reason, actor, **options):
        checkpoint = Checkpoint.objects.filter(pk=id).first()
        if checkpoint is None:
            raise CommandError(f"no checkpoint with id {id}")
        try:
            checkpoint_void(checkpoint=checkpoint, reason=reason, actor=actor or f"cli:{getpass.getuser()}")
        except (InvalidTransition, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"checkpoint {id} voided; its period will be built again once it is settled")
