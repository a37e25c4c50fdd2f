"""Rows the scoring tests need: a candle tape, Inputs with feed dims, rounds of predictions."""

from datetime import datetime, timedelta

from feeds.models import FeedRecord
from predictions.choices import PredictionStatus
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from tests.factories import make_feed_record, make_input, make_prediction

DIMS = {"source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m"}
BAR = timedelta(minutes=1)


def make_tape(start: datetime, closes: list[float], **dims) -> None:
    """1m candles opening at start, start+1m, ... with the given closes (bulk insert)."""
    fields = {**DIMS, **dims}
    FeedRecord.objects.bulk_create(
        FeedRecord(
            **fields,
            ts_event=start + i * BAR,
            values={"open": c, "high": c, "low": c, "close": c, "volume": 1.0},
        )
        for i, c in enumerate(closes)
    )


def make_candle(ts_event: datetime, close: float) -> FeedRecord:
    return make_feed_record(**DIMS, ts_event=ts_event, values={"open": close, "close": close})


def make_scoring_input(*, scheduled_for: datetime, horizon: timedelta = timedelta(minutes=5), **overrides) -> Input:
    """An Input whose scope names the tape stream; as_of = scheduled_for (a bar close)."""
    scope = {**DIMS, "scope_key": "BTC-5m", "horizon_seconds": int(horizon.total_seconds()), "step_seconds": 60}
    fields = {
        "scheduled_for": scheduled_for,
        "scope": scope,
        "as_of": scheduled_for,
        "resolvable_at": scheduled_for + horizon,
    }
    fields.update(overrides)
    return make_input(**fields)


def make_round(input_: Input, answers: dict[ParticipantModel, object]) -> list[Prediction]:
    """One prediction per model: a float is a PENDING p_up, a status string a FAILED/ABSENT answer."""
    rows = []
    for model, answer in answers.items():
        if isinstance(answer, float | int):
            rows.append(make_prediction(input=input_, model=model, output={"p_up": float(answer)}))
        elif answer == PredictionStatus.ABSENT:
            rows.append(make_prediction(input=input_, model=model, status=answer, output=None))
        else:
            rows.append(
                make_prediction(
                    input=input_,
                    model=model,
                    status=PredictionStatus.FAILED,
                    failure_reason=answer,
                    failure_detail=f"{answer} in test",
                    output=None,
                )
            )
    return rows


def bulk_dataset(*, start: datetime, inputs: int, models: list[ParticipantModel], spacing: timedelta) -> None:
    """`inputs` Inputs spaced `spacing` apart from `start`, each answered by every model, and
    a tape that resolves all of them. p_up varies by model and input so scores differ."""
    horizon = timedelta(minutes=5)
    config = PredictionConfig.objects.create(
        scope_key="BTC-bulk", interval_seconds=int(spacing.total_seconds()), horizon_seconds=300
    )
    bars = int(((inputs - 1) * spacing + horizon) / BAR) + 3
    tape_start = start - 2 * BAR
    make_tape(tape_start, [100.0 + ((i * 7919) % 23) - 11 for i in range(bars)])
    scope = {**DIMS, "scope_key": config.scope_key, "horizon_seconds": 300, "step_seconds": 60}
    rows = [
        Input(
            config=config,
            scheduled_for=start + i * spacing,
            raw_data={},
            scope=scope,
            as_of=start + i * spacing,
            received_at=start + i * spacing,
            resolvable_at=start + i * spacing + horizon,
        )
        for i in range(inputs)
    ]
    Input.objects.bulk_create(rows, batch_size=1000)
    predictions = []
    for n, input_ in enumerate(Input.objects.filter(config=config).order_by("scheduled_for")):
        for m, model in enumerate(models):
            kind = (n * 31 + m * 17) % 50
            status = PredictionStatus.PENDING
            fields = {"output": {"p_up": ((n * 13 + m * 29) % 101) / 100}}
            if kind == 0:
                status, fields = PredictionStatus.ABSENT, {"output": None}
            elif kind == 1:
                status, fields = PredictionStatus.FAILED, {"output": None, "failure_reason": "TIMEOUT"}
            predictions.append(
                Prediction(
                    input=input_,
                    model=model,
                    config=config,
                    scope_key=config.scope_key,
                    status=status,
                    performed_at=input_.scheduled_for,
                    resolvable_at=input_.resolvable_at,
                    **fields,
                )
            )
    Prediction.objects.bulk_create(predictions, batch_size=2000)
