from django.core.management.base import BaseCommand, CommandError

from reports.models import ApiKeyScope
from reports.services import api_key_create


class Command(BaseCommand):
    help = "Create a report-API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who or what the key is for.")
        parser.add_argument("--scope", required=True, choices=ApiKeyScope.values, help="read or admin.")

    def handle(self, *args, **options):
        try:
            key, raw = api_key_create(name=options["name"], scope=options["scope"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Created {options['scope']} key {key.name!r} (prefix {key.prefix}). It is shown only once:")
        self.stdout.write(raw)
