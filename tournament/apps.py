from django.apps import AppConfig


class TournamentConfig(AppConfig):
    name = "tournament"
    verbose_name = "Tournament"

    def ready(self) -> None:
        # run_predict and run_score sit to the left of this app: they call these units through
        # the registry (coordinator_site/units.py), never by import.
        from coordinator_site.units import register_unit
        from tournament.services import infer_next_round, score_next_round

        register_unit("run_predict", infer_next_round, name="tournament.infer")
        register_unit("run_score", score_next_round, name="tournament.score")
