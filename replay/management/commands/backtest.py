"""`manage.py backtest --model PATH [--model PATH …] --from T1 --to T2 [--config SCOPE] [--json]`."""

import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from replay.management.commands.replay import _time
from replay.services import ReplayError, replay_range


def _pct(frac64):
    return "-" if frac64 is None else f"{frac64 / 1e7:.4f}%"


class Command(BaseCommand):
    help = (
        "Run participant model folders (the local gateway's model interface) over the stored Inputs of a "
        "past range with a simulated clock, score them through the same services as the live models in a "
        "scratch store, and report their score per period and window and the rank and estimated reward "
        "they would have had against the live models' stored results."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", dest="models", action="append", required=True, metavar="PATH")
        parser.add_argument("--from", dest="start", required=True)
        parser.add_argument("--to", dest="end", required=True)
        parser.add_argument("--config", default="", help="Only the Inputs of this PredictionConfig scope_key.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        try:
            row = replay_range(
                start=_time(options["start"]),
                end=_time(options["end"]),
                backtest_models=options["models"],
                backtest_scope=options["config"],
                # Backtests compare ranks and rewards, not scoring clocks: the fast path.
                coalesce=True,
                actor=f"cli:{getpass.getuser()}",
            )
        except (ReplayError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        backtest = row.report["backtest"]
        if options["json"]:
            self.stdout.write(json.dumps({"report_id": row.pk, **backtest}, indent=1))
            return
        self.stdout.write(f"backtest over {backtest['inputs']} inputs: {backtest['counts']}")
        for model_id, result in backtest["models"].items():
            self.stdout.write(f"{model_id}: {result['scored']} of {result['predictions']} predictions scored")
            for s in result["snapshots"]:
                self.stdout.write(f"  period {s['period_start']}: value {s['value']} coverage {s['coverage']}")
            if result["range"]:
                r = result["range"]
                self.stdout.write(
                    f"  whole range as one period: rank {r['rank']} of {r['of']}, value {r['value']}, "
                    f"estimated reward {_pct(r['estimated_reward_pct'])}"
                )
            if result["leaderboards"]:
                last = result["leaderboards"][-1]
                self.stdout.write(
                    f"  last leaderboard {last['created_at']}: rank {last['rank']} of {last['of']}, {last['metrics']}"
                )
            for c in result["checkpoints"]:
                self.stdout.write(
                    f"  checkpoint [{c['period_start']}, {c['period_end']}): rank {c['rank']} of {c['of']}, "
                    f"value {c['value']}, estimated reward {_pct(c['estimated_reward_pct'])}"
                )
            if result["live_model"]:
                live = result["live_model"]
                self.stdout.write(
                    f"  against live {live['model_id']}: {live['identical_scores']} of {live['inputs_in_common']} scores identical"
                )
        self.stdout.write(f"stored as replay report {row.pk}")
