"""`manage.py export_tape --from T1 --to T2 --out DIR [--config SCOPE]`: CSV files for backtests."""

from pathlib import Path

from django.core.management.base import BaseCommand

from replay.export import export_range
from replay.management.commands.replay import _time


class Command(BaseCommand):
    help = (
        "Export the tape, the Inputs (windows, actuals) and every model's stored scores of a range as CSV "
        "(tape.csv, inputs.csv, scores.csv, manifest.json): what the challenge package's backtest runs on."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True)
        parser.add_argument("--to", dest="end", required=True)
        parser.add_argument("--out", required=True, help="Directory to write (created).")
        parser.add_argument("--config", default="", help="Only the Inputs of this PredictionConfig scope_key.")

    def handle(self, *args, **options):
        counts = export_range(
            start=_time(options["start"]),
            end=_time(options["end"]),
            out=Path(options["out"]),
            scope_key=options["config"],
        )
        self.stdout.write(f"exported to {options['out']}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
