"""Rows for checkpoint tests: models with snapshots in a period, built through the factories."""

from contextlib import contextmanager
from datetime import timedelta

from django.db import connection

from predictions.models import ParticipantModel
from scoring.models import Snapshot
from tests.factories import make_model, make_snapshot


def summary(value, value_count, **extra):
    """A result_summary as the scoring worker writes it (value_field "value")."""
    return {"value": value, "value_count": value_count, "coverage": 1.0, **extra}


def add_snapshot(model, start, value, value_count, *, hours=1, **fields):
    return make_snapshot(
        model=model,
        period_start=start,
        period_end=start + timedelta(hours=hours),
        prediction_count=fields.pop("prediction_count", value_count),
        counts=fields.pop("counts", {"SCORED": value_count}),
        result_summary=summary(value, value_count),
        **fields,
    )


def many_snapshots(n, start, *, prefix="bulk"):
    """n models with one snapshot each at `start`, inserted in bulk (for big Merkle trees)."""
    ParticipantModel.objects.bulk_create(
        ParticipantModel(model_id=f"{prefix}{i:05d}", name=f"{prefix} {i}", cruncher_index=i) for i in range(n)
    )
    models = list(ParticipantModel.objects.filter(model_id__startswith=prefix).order_by("model_id"))
    Snapshot.objects.bulk_create(
        Snapshot(
            model=model,
            period_start=start,
            period_end=start + timedelta(hours=1),
            prediction_count=4,
            counts={"SCORED": 4},
            result_summary=summary(0.1 + (i % 17) / 100, 4),
        )
        for i, model in enumerate(models)
    )
    return list(Snapshot.objects.filter(model__in=models).select_related("model"))


def indexed_models(n):
    """n models, each with an on-chain cruncher index (100, 101, ...)."""
    return [make_model(cruncher_index=100 + i) for i in range(n)]


@contextmanager
def seal_guard_off():
    """What a hand edit of a sealed snapshot would have to do first on PostgreSQL: switch the
    sealed-snapshot trigger off (SQLite has none; the write path alone keeps sealed rows)."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks may block the ALTER
            cursor.execute("ALTER TABLE scoring_snapshot DISABLE TRIGGER scoring_snapshot_sealed")
        try:
            yield cursor
        finally:
            if postgres:
                cursor.execute("ALTER TABLE scoring_snapshot ENABLE TRIGGER scoring_snapshot_sealed")
