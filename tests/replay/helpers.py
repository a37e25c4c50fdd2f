"""A small live store built by the workers' own services, and a checksum of the live tables."""

import hashlib
from datetime import UTC, datetime, timedelta

from django.apps import apps

from checkpoints.selectors import aligned_period
from checkpoints.services import build_checkpoint
from scoring.services import rebuild_leaderboard, score_batch
from tests.factories import make_config, make_model
from tests.scoring.helpers import make_round, make_scoring_input, make_tape

# A Monday, long past: its weekly checkpoint period has ended.
T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
LIVE_APPS = ("feeds", "predictions", "scoring", "checkpoints")


def build_two_model_store():
    """Two models, two Inputs (the first up, the second down), scored, ranked and checkpointed by
    the services the workers use. Brier ranks A first (0.09 < 0.125); log-loss ranks B first
    (B: (~0 + ln 2) / 2 = 0.3466 < A: -ln 0.7 = 0.3567)."""
    a = make_model(model_id="model-a", cruncher_index=1)
    b = make_model(model_id="model-b", cruncher_index=2)
    config = make_config(scope_key="BTC-5m", next_run_at=T + timedelta(days=30))
    # 1m candles from T-2m; the bar ending at T-1m+i closes at closes[i]: 100 up to T+4m, 101 from
    # T+5m to T+14m, 100 again from T+15m.
    make_tape(T - timedelta(minutes=2), [100.0] * 6 + [101.0] * 10 + [100.0] * 10)
    # The window the models saw (its last close: 100, then 101).
    up = make_scoring_input(scheduled_for=T, config=config, raw_data=_window(T, 100.0))
    down = make_scoring_input(
        scheduled_for=T + timedelta(minutes=10), config=config, raw_data=_window(T + timedelta(minutes=10), 101.0)
    )
    make_round(up, {a: 0.7, b: 1.0})
    make_round(down, {a: 0.3, b: 0.5})
    score_batch(worker="live", batch=500, now=T + timedelta(minutes=6))
    rebuild_leaderboard(now=T + timedelta(minutes=7))
    score_batch(worker="live", batch=500, now=T + timedelta(minutes=16))
    rebuild_leaderboard(now=T + timedelta(minutes=17))
    period = aligned_period(T)
    build_checkpoint(period=period, readiness="settled: test", now=period.end + timedelta(minutes=1))
    return a, b, period


def _window(at, close):
    record = {"ts_event": (at - timedelta(minutes=1)).isoformat(), "open": close, "close": close, "volume": 1.0}
    return {"subject": "BTC", "as_of": at.isoformat(), "records": [record]}


def live_checksum() -> dict[str, tuple[int, str]]:
    """Per live table: (row count, sha256 over every row's values in primary-key order)."""
    out = {}
    for app in LIVE_APPS:
        for model in apps.get_app_config(app).get_models():
            digest = hashlib.sha256()
            rows = model.objects.order_by("pk").values_list(*[f.attname for f in model._meta.concrete_fields])
            count = 0
            for row in rows.iterator(chunk_size=5000):
                digest.update(repr(row).encode())
                count += 1
            out[model._meta.db_table] = (count, digest.hexdigest())
    return out
