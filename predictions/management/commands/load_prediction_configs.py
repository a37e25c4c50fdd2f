"""`manage.py load_prediction_configs [--path FILE]`: upsert the configs file by scope_key."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictions.configs import ConfigFileError
from predictions.services import load_prediction_configs


class Command(BaseCommand):
    help = "Upsert PredictionConfig rows from PREDICTION_CONFIGS_PATH (or --path) by scope_key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--path", default=None, help="Configs file (default: PREDICTION_CONFIGS_PATH).")

    def handle(self, *args, **options) -> None:
        try:
            counts = load_prediction_configs(path=options["path"])
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] >= 1:
            path = options["path"] or settings.PREDICTION_CONFIGS_PATH
            summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none listed"
            self.stdout.write(f"Prediction configs from {path}: {summary}.")
