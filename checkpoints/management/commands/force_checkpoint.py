"""`manage.py force_checkpoint --reason ...`: build the next period although it is not settled."""

import getpass

from django.core.management.base import BaseCommand, CommandError

from checkpoints.services import force_checkpoint


class Command(BaseCommand):
    help = (
        "Build the checkpoint of the next ended period now, although it waits for inputs or schedules "
        "(an operator's decision: recorded as forced, with the actor and the reason). Scores that arrive "
        "later for that period are stored and reported as late, never paid."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="Why the period is forced (recorded).")
        parser.add_argument("--actor", default="", help="Who forces it (default: the system user).")

    def handle(self, *args, reason, actor, **options):
        try:
            checkpoint = force_checkpoint(reason=reason, actor=actor or f"cli:{getpass.getuser()}")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        verification = checkpoint.meta.get("verification", {})
        self.stdout.write(
            f"checkpoint {checkpoint.pk} built (forced) for [{checkpoint.period_start.isoformat()}, "
            f"{checkpoint.period_end.isoformat()}); verification {'ok' if verification.get('ok') else 'FAILED'}"
        )
