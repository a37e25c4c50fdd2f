"""`manage.py replay_child SPEC OUT`: the replay's child process (started by `manage.py replay`).

Its default database is the scratch store and `replay_source` the live one (read-only). It
migrates the scratch store, replays (replay.engine) and writes the report to OUT.
"""

import json
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models.signals import post_migrate

from replay.engine import SOURCE, ReplaySpec, replay_in_scratch


class Command(BaseCommand):
    help = "Internal: run by `manage.py replay` in a child process whose default database is the scratch store."

    def add_arguments(self, parser):
        parser.add_argument("spec")
        parser.add_argument("out")

    def handle(self, *args, spec, out, **options):
        if SOURCE not in settings.DATABASES:
            raise CommandError("REPLAY_SOURCE_DATABASE_URL is not set: run `manage.py replay` instead")
        # The scratch store holds copies of the live rows only: no configs seeded from the file.
        post_migrate.disconnect(sender=apps.get_app_config("predictions"), dispatch_uid="predictions_load_configs")
        call_command("migrate", interactive=False, verbosity=0)
        report = replay_in_scratch(ReplaySpec.from_json(json.loads(Path(spec).read_text())))
        Path(out).write_text(json.dumps(report, default=str))
