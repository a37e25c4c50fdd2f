"""Tournament rounds: open, infer through the local gateway, upload truth, score once, re-score, cancel."""

import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from coordinator_site.transitions import InvalidTransition
from coordinator_site.units import registered_units
from predictions.choices import ExpiryReason, FailureReason, InputStatus, PredictionStatus
from predictions.models import Input, Prediction
from scoring.models import Score, Snapshot
from scoring.services import score_batch
from tests.tournament.helpers import BASE, UP, P, make_gateway, round_samples, truth_for, write_round_models
from tournament.choices import RoundStatus
from tournament.models import Round
from tournament.services import (
    RoundError,
    cancel_round,
    claim_round,
    infer_next_round,
    infer_round_chunk,
    open_round,
    parse_samples,
    parse_truth_file,
    request_rescore,
    score_next_round,
    upload_ground_truth,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def gateway(tmp_path, settings):
    settings.MODEL_BASE_CLASSNAME = BASE
    gw = make_gateway(write_round_models(tmp_path / "models"), timeout=0.3)
    yield gw
    gw.close()


def opened(round_id="r1", n=6, weight=0.25):
    round_, created = open_round(
        round_id=round_id, samples=parse_samples(round_samples(n)), out_of_sample_weight=weight
    )
    assert created
    return round_


def inferred(gateway, **kwargs):
    round_ = opened(**kwargs)
    while infer_next_round(gateway=gateway, worker_id="w"):
        pass
    round_.refresh_from_db()
    assert round_.status == RoundStatus.INFERENCE_DONE
    return round_


def by_sample(round_, model_id):
    return {
        p.input.sample_id: p
        for p in Prediction.objects.filter(config_id=round_.config_id, model__model_id=model_id).select_related("input")
    }


# --- open ---------------------------------------------------------------------------------------


def test_open_stores_one_input_per_sample_on_an_inactive_config():
    round_ = opened()
    inputs = Input.objects.filter(config_id=round_.config_id).order_by("sample_id")
    assert [i.sample_id for i in inputs] == [f"s{i}" for i in range(6)]
    assert [i.scope["part"] for i in inputs] == ["in_sample"] * 4 + ["out_of_sample"] * 2
    assert round_.config.active is False
    assert round_.config.scope_key == "tournament:r1"
    assert round_.status == RoundStatus.OPEN
    assert round_.sample_count == 6


def test_opening_the_same_round_again_is_a_no_op_and_with_other_samples_a_conflict():
    round_ = opened()
    again, created = open_round(round_id="r1", samples=parse_samples(round_samples(6)), out_of_sample_weight=0.25)
    assert again.pk == round_.pk
    assert not created
    with pytest.raises(InvalidTransition):
        open_round(round_id="r1", samples=parse_samples(round_samples(5)), out_of_sample_weight=0.25)


def test_invalid_samples_are_all_reported_and_nothing_is_written():
    bad = [
        {"sample_id": "a", "features": {}},
        {"sample_id": "a", "features": {}},
        {"sample_id": "", "features": {}},
        {"sample_id": "b", "features": [1]},
        {"sample_id": "c", "features": {}, "part": "elsewhere"},
    ]
    with pytest.raises(RoundError) as caught:
        parse_samples(bad)
    assert len(caught.value.problems) == 4
    assert not Round.objects.exists()


def test_live_scoring_never_claims_a_rounds_samples():
    opened()
    result = score_batch(worker="live", batch=100, now=timezone.now() + timedelta(days=1))
    assert result.claimed == 0
    assert Input.objects.filter(status=InputStatus.RECEIVED).count() == 6


# --- inference ----------------------------------------------------------------------------------


def test_inference_asks_every_model_once_per_sample_keyed_by_sample(gateway):
    round_ = inferred(gateway)
    echo, skipper, sleeper = (by_sample(round_, m) for m in ("echo", "skipper", "sleeper"))
    assert set(echo) == set(skipper) == set(sleeper) == {f"s{i}" for i in range(6)}
    assert all(echo[f"s{i}"].output == {"p_up": P[i]} for i in range(6))
    assert skipper["s2"].status == PredictionStatus.FAILED
    assert skipper["s2"].failure_reason == FailureReason.INVALID_OUTPUT
    assert skipper["s3"].output == {"p_up": pytest.approx(1 - P[3])}
    assert {p.failure_reason for p in sleeper.values()} == {FailureReason.TIMEOUT}
    assert round_.inference_done_at is not None
    assert round_.claimed_by == ""


def test_the_infer_command_asks_about_the_named_round_only(tmp_path, settings):
    settings.MODEL_GATEWAY = "local"
    settings.MODELS_DIR = str(write_round_models(tmp_path / "models"))
    settings.MODEL_BASE_CLASSNAME = BASE
    settings.MODEL_CALL_TIMEOUT_SECONDS = 0.3
    older, named = opened("r1"), opened("r2")
    out = StringIO()
    call_command("tournament", "infer", "r2", stdout=out)
    older.refresh_from_db()
    named.refresh_from_db()
    assert "round r2: INFERENCE_DONE" in out.getvalue()
    assert named.status == RoundStatus.INFERENCE_DONE
    assert older.status == RoundStatus.OPEN  # the oldest open round is left for its own command or run_predict
    assert not Prediction.objects.filter(config_id=older.config_id).exists()


def test_inference_runs_in_chunks_and_continues_from_its_cursor(gateway, settings):
    settings.TOURNAMENT_INFERENCE_CHUNK = 4
    round_ = opened()
    token, claimed = claim_round(status=RoundStatus.OPEN, worker_id="w")
    report = infer_round_chunk(round_=claimed, token=token, gateway=gateway)
    assert (report.samples, report.done) == (4, False)
    round_.refresh_from_db()
    assert round_.status == RoundStatus.OPEN
    assert round_.meta["inference_cursor"] == "s3"
    assert round_.claimed_by == ""
    assert infer_next_round(gateway=gateway, worker_id="w")
    round_.refresh_from_db()
    assert round_.status == RoundStatus.INFERENCE_DONE
    assert Prediction.objects.filter(config_id=round_.config_id).count() == 18
    assert not infer_next_round(gateway=gateway, worker_id="w")


def test_the_tournament_units_are_registered_for_the_workers():
    assert "tournament.infer" in registered_units("run_predict")
    assert "tournament.score" in registered_units("run_score")


# --- ground truth ---------------------------------------------------------------------------------


def test_truth_before_inference_is_done_is_refused(gateway):
    round_ = opened()
    with pytest.raises(InvalidTransition):
        upload_ground_truth(round_=round_, truth={"s0": truth_for(0)})


def test_missing_extra_and_invalid_truth_are_reported(gateway):
    round_ = inferred(gateway)
    truth = {f"s{i}": truth_for(i) for i in range(6) if i != 3}
    truth["s99"] = truth_for(0)
    truth["s5"] = {"entry_price": "lots"}
    round_ = upload_ground_truth(round_=round_, truth=truth)
    report = round_.truth_report
    assert report["missing"] == ["s3"]
    assert report["extra"] == ["s99"]
    assert list(report["invalid"]) == ["s5"]
    assert report["accepted"] == 4
    assert set(round_.ground_truth) == {"s0", "s1", "s2", "s4"}
    assert round_.status == RoundStatus.GROUND_TRUTH_UPLOADED


def test_reupload_before_scoring_replaces_the_truth(gateway):
    round_ = inferred(gateway)
    upload_ground_truth(round_=round_, truth={"s0": truth_for(0)})
    round_ = upload_ground_truth(round_=round_, truth={f"s{i}": truth_for(i) for i in range(6)})
    assert set(round_.ground_truth) == {f"s{i}" for i in range(6)}
    assert round_.truth_report["missing"] == []


def test_truth_files_in_csv_and_json_give_the_same_mapping():
    csv_text = "sample_id,entry_price,resolved_price,return,direction_up\ns0,100,101,0.01,true\ns1,100,99,-0.01,false\n"
    rows = [{"sample_id": "s0", **truth_for(0)}, {"sample_id": "s1", **truth_for(1)}]
    from_csv = parse_truth_file(csv_text, name="truth.csv")
    from_json = parse_truth_file(json.dumps(rows), name="truth.json")
    assert from_csv == from_json
    assert parse_truth_file(json.dumps({"s0": truth_for(0)})) == {"s0": truth_for(0)}
    with pytest.raises(RoundError):
        parse_truth_file(json.dumps([{"sample_id": "s0"}, {"sample_id": "s0"}]))


# --- scoring ------------------------------------------------------------------------------------


def scored_round(gateway, truth=None):
    round_ = inferred(gateway)
    upload_ground_truth(round_=round_, truth=truth or {f"s{i}": truth_for(i) for i in range(6)})
    assert score_next_round(worker_id="scorer")
    round_.refresh_from_db()
    assert round_.status == RoundStatus.SCORED, round_.last_error
    return round_


def test_each_prediction_is_scored_against_its_own_samples_truth(gateway):
    truth = {f"s{i}": truth_for(i) for i in range(6) if i != 1}
    truth["extra"] = truth_for(0)
    round_ = scored_round(gateway, truth)
    echo, skipper, sleeper = (by_sample(round_, m) for m in ("echo", "skipper", "sleeper"))
    for i in (0, 2, 3, 4, 5):
        y = 1.0 if UP[i] else 0.0
        assert echo[f"s{i}"].score.value == pytest.approx((P[i] - y) ** 2)
        assert echo[f"s{i}"].status == PredictionStatus.SCORED
        if i != 2:
            assert skipper[f"s{i}"].score.value == pytest.approx((1 - P[i] - y) ** 2)
    # the sample without truth: its Input EXPIRED, every open answer FAILED NO_GROUND_TRUTH, no value
    assert Input.objects.get(config_id=round_.config_id, sample_id="s1").expiry_reason == ExpiryReason.NO_GROUND_TRUTH
    assert echo["s1"].failure_reason == FailureReason.NO_GROUND_TRUTH
    assert echo["s1"].score.value is None
    # the skipped sample and the timeouts get the missing-answer policy (default: worst of the sample)
    # (s2 did not go up; echo's 0.6 is the only answer, so the worst value is 0.6 ** 2)
    assert skipper["s2"].score.value == pytest.approx(P[2] ** 2)
    assert skipper["s2"].score.success is False
    assert sleeper["s0"].score.failed_reason == FailureReason.TIMEOUT
    assert Score.objects.filter(input__config_id=round_.config_id).count() == 18


def test_round_results_per_part_and_combined_by_the_weight(gateway):
    round_ = scored_round(gateway)
    echo = round_.results["models"]["echo"]
    in_values = [(P[i] - (1.0 if UP[i] else 0.0)) ** 2 for i in range(4)]
    out_values = [(P[i] - (1.0 if UP[i] else 0.0)) ** 2 for i in (4, 5)]
    assert echo["in_sample"]["mean"] == pytest.approx(sum(in_values) / 4)
    assert echo["out_of_sample"]["mean"] == pytest.approx(sum(out_values) / 2)
    assert echo["combined"] == pytest.approx(0.75 * sum(in_values) / 4 + 0.25 * sum(out_values) / 2)
    assert round_.results["out_of_sample_weight"] == 0.25
    assert echo["rank"] == 1  # Brier: lower is better, and echo is the best forecaster here


def test_round_scores_reach_the_snapshot_of_the_period_open_when_scored(gateway):
    round_ = scored_round(gateway)
    scores = Score.objects.filter(input__config_id=round_.config_id)
    assert {s.performed_at for s in scores} == {round_.scored_at}
    snapshots = Snapshot.objects.filter(model__model_id="echo")
    assert snapshots.count() == 1
    assert snapshots.get().prediction_count == 6


def test_a_round_is_scored_once(gateway):
    round_ = scored_round(gateway)
    assert not score_next_round(worker_id="other")
    round_.refresh_from_db()
    assert Score.objects.filter(input__config_id=round_.config_id).count() == 18


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent claimers need PostgreSQL")
def test_concurrent_scorers_score_a_round_exactly_once(gateway):
    round_ = inferred(gateway)
    upload_ground_truth(round_=round_, truth={f"s{i}": truth_for(i) for i in range(6)})
    found, barrier = [], threading.Barrier(4)

    def scorer(name):
        barrier.wait()
        try:
            found.append(score_next_round(worker_id=name))
        finally:
            connection.close()

    threads = [threading.Thread(target=scorer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found.count(True) >= 1
    round_.refresh_from_db()
    assert round_.status == RoundStatus.SCORED
    assert Score.objects.filter(input__config_id=round_.config_id).count() == 18
    assert Snapshot.objects.get(model__model_id="echo").prediction_count == 6


def test_truth_after_scoring_needs_an_explicit_rescore_with_a_reason(gateway):
    round_ = scored_round(gateway)
    with pytest.raises(InvalidTransition, match="re-score"):
        upload_ground_truth(round_=round_, truth={"s0": truth_for(0)})
    with pytest.raises(RoundError):
        request_rescore(round_=round_, reason=" ")
    request_rescore(round_=round_, reason="truth of s0 corrected", actor="ops")
    flipped = {f"s{i}": truth_for(i) for i in range(6)}
    flipped["s0"] = truth_for(1)  # s0 did not go up after all
    upload_ground_truth(round_=round_, truth=flipped)
    assert score_next_round(worker_id="scorer")
    round_.refresh_from_db()
    assert round_.status == RoundStatus.SCORED
    assert round_.rescores[0]["reason"] == "truth of s0 corrected"
    echo = by_sample(round_, "echo")
    assert echo["s0"].score.value == pytest.approx(P[0] ** 2)
    assert Score.objects.filter(input__config_id=round_.config_id).count() == 18
    assert Snapshot.objects.get(model__model_id="echo").prediction_count == 6


def test_cancel_ends_the_round_and_its_samples(gateway):
    round_ = inferred(gateway)
    with pytest.raises(RoundError):
        cancel_round(round_=round_, reason="")
    round_ = cancel_round(round_=round_, reason="bad feature file", actor="ops")
    assert round_.status == RoundStatus.CANCELLED
    assert not Input.objects.filter(config_id=round_.config_id, status=InputStatus.RECEIVED).exists()
    assert not Prediction.objects.filter(config_id=round_.config_id, status=PredictionStatus.PENDING).exists()
    with pytest.raises(InvalidTransition):
        upload_ground_truth(round_=round_, truth={"s0": truth_for(0)})


def test_the_score_pass_runs_over_the_whole_round_population(gateway, settings):
    from scoring.postprocess import percentile

    settings.SCORE_PASS = "cap"
    settings.SCORE_PASS_CAP_PERCENTILE = "50"
    truth = {f"s{i}": truth_for(i) for i in range(6)}
    round_ = scored_round(gateway, truth)
    raw = {}
    for i in range(6):
        y = 1.0 if UP[i] else 0.0
        raw[(f"s{i}", "echo")] = (P[i] - y) ** 2
        if i != 2:
            raw[(f"s{i}", "skipper")] = (1 - P[i] - y) ** 2
    cap = percentile(sorted(raw.values()), 50)  # one cap for the round, not one per sample
    for (sample, model), value in raw.items():
        score = by_sample(round_, model)[sample].score
        assert score.result["raw_value"] == pytest.approx(value)
        assert score.value == pytest.approx(min(value, cap))
        assert score.result["score_pass_population"] == "round"
    # the skipped sample's penalty is the worst passed value of that sample (only echo answered)
    assert by_sample(round_, "skipper")["s2"].score.value == pytest.approx(min(raw[("s2", "echo")], cap))
