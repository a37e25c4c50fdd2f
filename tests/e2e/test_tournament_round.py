"""A tournament round end to end on PostgreSQL with real worker processes.

run_predict and two run_score processes run while a live Input is scored too. The operator
opens a round with `manage.py tournament open`, three models answer every sample (one skips a
sample, one times out), ground truth is uploaded with one sample missing and one extra, and the
round is scored exactly once: each prediction against its own sample's truth.
"""

import json
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from predictions.choices import ExpiryReason, FailureReason, InputStatus, PredictionStatus
from predictions.models import Input, Prediction
from scoring.models import Score
from tests.e2e.processes import start, stop, wait_for
from tests.factories import make_model
from tests.scoring.helpers import make_round, make_scoring_input, make_tape
from tests.tournament.helpers import BASE, UP, P, round_samples, truth_for, write_round_models
from tournament.choices import RoundStatus
from tournament.models import Round

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="end-to-end worker runs are PostgreSQL's"),
]


def fresh(query):
    close_old_connections()
    return query()


def round_status(round_id):
    return fresh(lambda: Round.objects.filter(round_id=round_id).values_list("status", flat=True).first())


def test_a_round_end_to_end_with_real_workers(tmp_path, manage_py, worker_env):
    write_round_models(tmp_path / "models")
    configs = tmp_path / "configs.json"
    configs.write_text("[]")
    env = {
        **worker_env,
        "MODELS_DIR": str(tmp_path / "models"),
        "MODEL_BASE_CLASSNAME": BASE,
        "MODEL_GATEWAY": "local",
        "MODEL_CALL_TIMEOUT_SECONDS": "1",
        "PREDICTION_CONFIGS_PATH": str(configs),
        "WORKER_HEARTBEAT_SECONDS": "1",
    }
    # A live Input the score worker resolves from the tape meanwhile (live scoring goes on).
    now = timezone.now()
    start_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=12)
    make_tape(start_minute, [100.0 + i for i in range(12)])
    live = make_scoring_input(scheduled_for=start_minute + timedelta(minutes=2))
    make_round(live, {make_model(model_id="live-model", status="RETIRED"): 0.7})

    workers = [
        start([*manage_py, "run_predict", "--sleep", "0.5"], env),
        start([*manage_py, "run_score", "--sleep", "0.2"], env),
        start([*manage_py, "run_score", "--sleep", "0.2"], env),
    ]
    try:
        for _process, output in workers:
            assert wait_for(lambda output=output: output.contains("started"), timeout=90), output.text
        round_file = tmp_path / "round.json"
        round_file.write_text(
            json.dumps({"round_id": "r-e2e", "out_of_sample_weight": 0.4, "samples": round_samples()})
        )
        opened = start([*manage_py, "tournament", "open", str(round_file)], env)
        assert opened[0].wait(timeout=120) == 0, opened[1].text
        assert "round r-e2e opened: 6 sample(s)" in opened[1].text

        assert wait_for(lambda: round_status("r-e2e") == RoundStatus.INFERENCE_DONE, timeout=120), workers[0][1].text

        # Truth: s3 missing, one sample the round does not have; as CSV.
        truth = tmp_path / "truth.csv"
        lines = ["sample_id,entry_price,resolved_price,return,direction_up"]
        for i in [0, 1, 2, 4, 5]:
            t = truth_for(i)
            lines.append(
                f"s{i},{t['entry_price']},{t['resolved_price']},{t['return']},{str(t['direction_up']).lower()}"
            )
        lines.append("not-a-sample,100,101,0.01,true")
        truth.write_text("\n".join(lines) + "\n")
        uploaded = start([*manage_py, "tournament", "upload-truth", "r-e2e", str(truth)], env)
        assert uploaded[0].wait(timeout=120) == 0, uploaded[1].text
        assert "missing ['s3'], extra ['not-a-sample']" in uploaded[1].text

        assert wait_for(lambda: round_status("r-e2e") == RoundStatus.SCORED, timeout=120), "\n".join(
            o.text for _, o in workers
        )
        assert wait_for(lambda: fresh(lambda: Input.objects.get(pk=live.pk).status == InputStatus.RESOLVED), timeout=60)
    finally:
        for process, _output in workers:
            stop(process)

    close_old_connections()
    round_ = Round.objects.get(round_id="r-e2e")
    scorer_logs = "\n".join(o.text for _, o in workers[1:])
    assert scorer_logs.count("round r-e2e scored") == 1, scorer_logs
    assert round_.truth_report["missing"] == ["s3"]
    assert round_.truth_report["extra"] == ["not-a-sample"]

    predictions = {
        (p.input.sample_id, p.model.model_id): p
        for p in Prediction.objects.filter(config_id=round_.config_id).select_related("input", "model", "score")
    }
    assert len(predictions) == 18  # 3 models x 6 samples, each once
    assert Score.objects.filter(input__config_id=round_.config_id).count() == 18  # scored once
    for i in (0, 1, 2, 4, 5):
        y = 1.0 if UP[i] else 0.0
        assert predictions[(f"s{i}", "echo")].score.value == pytest.approx((P[i] - y) ** 2)
        if i != 2:
            assert predictions[(f"s{i}", "skipper")].score.value == pytest.approx((1 - P[i] - y) ** 2)
        assert predictions[(f"s{i}", "sleeper")].failure_reason == FailureReason.TIMEOUT
    skipped = predictions[("s2", "skipper")]
    assert skipped.status == PredictionStatus.FAILED
    assert skipped.failure_reason == FailureReason.INVALID_OUTPUT
    s3 = Input.objects.get(config_id=round_.config_id, sample_id="s3")
    assert s3.status == InputStatus.EXPIRED
    assert s3.expiry_reason == ExpiryReason.NO_GROUND_TRUTH
    assert predictions[("s3", "echo")].failure_reason == FailureReason.NO_GROUND_TRUTH
    echo = round_.results["models"]["echo"]
    assert echo["rank"] == 1
    assert echo["in_sample"]["n"] == 3  # s0, s1, s2 (s3 has no truth)
    assert echo["combined"] == pytest.approx(0.6 * echo["in_sample"]["mean"] + 0.4 * echo["out_of_sample"]["mean"])
