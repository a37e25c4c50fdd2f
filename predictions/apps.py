from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


def load_configs_after_migrate(sender, using="default", verbosity=1, **kwargs) -> None:
    """Upsert `scheduled_prediction_configs.json` at `manage.py migrate` time.

    Skipped under the test suite (test databases start empty; tests load configs explicitly)
    and when the file does not exist. A file that exists but is invalid fails the migrate.
    """
    if settings.RUNNING_TESTS or using != "default":
        return
    path = Path(settings.PREDICTION_CONFIGS_PATH)
    if not path.is_file():
        if verbosity:
            print(f"  No prediction configs file at {path}; none loaded.")
        return
    from predictions.services import load_prediction_configs

    counts = load_prediction_configs(path=path)
    if verbosity:
        print(f"  Prediction configs from {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self) -> None:
        post_migrate.connect(load_configs_after_migrate, sender=self, dispatch_uid="predictions_load_configs")
