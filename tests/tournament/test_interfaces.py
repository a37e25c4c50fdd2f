"""The three interfaces to rounds: the admin-key API, `manage.py tournament` and the admin."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from reports.services import api_key_create
from tests.tournament.helpers import BASE, make_gateway, round_samples, truth_for, write_round_models
from tournament.choices import RoundStatus
from tournament.models import Round
from tournament.services import infer_next_round, score_next_round

pytestmark = pytest.mark.django_db

ROUNDS = "/reports/tournament/rounds"


@pytest.fixture
def admin_api():
    _, raw = api_key_create(name="admin-key", scope="admin")
    return APIClient(HTTP_X_API_KEY=raw)


@pytest.fixture
def gateway(tmp_path, settings):
    settings.MODEL_BASE_CLASSNAME = BASE
    gw = make_gateway(write_round_models(tmp_path / "models", names=("echo",)), timeout=0.3)
    yield gw
    gw.close()


def infer_all(gateway):
    while infer_next_round(gateway=gateway, worker_id="w"):
        pass


def test_api_round_lifecycle(admin_api, gateway):
    body = {"round_id": "api-1", "out_of_sample_weight": 0.3, "samples": round_samples()}
    created = admin_api.post(ROUNDS, body, format="json")
    assert created.status_code == 200, created.content
    assert created.json()["created"] is True
    again = admin_api.post(ROUNDS, body, format="json")  # the same again: a no-op
    assert again.status_code == 200
    assert again.json()["created"] is False
    changed = {**body, "samples": round_samples(5)}
    assert admin_api.post(ROUNDS, changed, format="json").status_code == 409
    infer_all(gateway)
    truth = [{"sample_id": f"s{i}", **truth_for(i)} for i in range(5)] + [{"sample_id": "zz", **truth_for(0)}]
    uploaded = admin_api.post(f"{ROUNDS}/api-1/ground-truth", {"ground_truth": truth}, format="json")
    assert uploaded.status_code == 200, uploaded.content
    assert uploaded.json()["truth_report"]["missing"] == ["s5"]
    assert uploaded.json()["truth_report"]["extra"] == ["zz"]
    assert score_next_round(worker_id="s")
    detail = APIClient().get(f"{ROUNDS}/api-1").json()
    assert detail["status"] == RoundStatus.SCORED
    assert set(detail["results"]["models"]["echo"]) >= {"in_sample", "out_of_sample", "combined", "rank"}
    rows = APIClient().get(f"{ROUNDS}/api-1/predictions").json()
    assert [(r["sample_id"], r["model_id"]) for r in rows] == [(f"s{i}", "echo") for i in range(6)]
    assert admin_api.post(f"{ROUNDS}/api-1/ground-truth", {"ground_truth": truth}, format="json").status_code == 409
    assert admin_api.post(f"{ROUNDS}/api-1/rescore", {"reason": ""}, format="json").status_code == 400
    assert admin_api.post(f"{ROUNDS}/api-1/rescore", {"reason": "fix"}, format="json").status_code == 200
    listed = APIClient().get(ROUNDS).json()
    assert [r["round_id"] for r in listed] == ["api-1"]


def test_api_writes_need_an_admin_key_and_bad_bodies_are_400(admin_api):
    body = {"round_id": "api-2", "samples": round_samples()}
    assert APIClient().post(ROUNDS, body, format="json").status_code in (401, 403)
    bad = admin_api.post(ROUNDS, {"round_id": "api-2", "samples": [{"sample_id": "a"}]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["problems"]
    assert admin_api.post(ROUNDS, {"round_id": "bad id", "samples": round_samples()}, format="json").status_code == 400
    assert admin_api.post(ROUNDS, ["not", "an", "object"], format="json").status_code == 400
    assert APIClient().get(f"{ROUNDS}/nope").status_code == 404
    assert not Round.objects.exists()


def test_command_opens_uploads_and_reports(tmp_path, gateway, capsys):
    round_file = tmp_path / "round.json"
    round_file.write_text(json.dumps({"round_id": "cli-1", "samples": round_samples()}))
    call_command("tournament", "open", str(round_file))
    assert "round cli-1 opened: 6 sample(s)" in capsys.readouterr().out
    infer_all(gateway)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({f"s{i}": truth_for(i) for i in range(6)}))
    call_command("tournament", "upload-truth", "cli-1", str(truth))
    assert "6/6 sample(s) stored; missing [], extra []" in capsys.readouterr().out
    score_next_round(worker_id="s")
    call_command("tournament", "status", "cli-1")
    assert json.loads(capsys.readouterr().out)["status"] == RoundStatus.SCORED
    with pytest.raises(CommandError, match="re-score"):
        call_command("tournament", "upload-truth", "cli-1", str(truth))
    with pytest.raises(CommandError, match="no round"):
        call_command("tournament", "status", "nope")


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("operator", "op@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_round", "change_round"]))
    client.force_login(user)
    return client


def test_admin_opens_a_round_uploads_truth_and_shows_refusals(staff_client, gateway):
    round_file = SimpleUploadedFile("round.json", json.dumps({"samples": round_samples()}).encode())
    response = staff_client.post(
        "/admin/tournament/round/open/", {"round_id": "adm-1", "round_file": round_file}, follow=True
    )
    assert response.status_code == 200
    round_ = Round.objects.get(round_id="adm-1")
    early = SimpleUploadedFile("t.json", json.dumps({"s0": truth_for(0)}).encode())
    refused = staff_client.post(f"/admin/tournament/round/{round_.pk}/upload/", {"truth_file": early})
    assert b"Refused" in refused.content
    infer_all(gateway)
    csv_text = "sample_id,entry_price,resolved_price,return,direction_up\ns0,100,101,0.01,true\n"
    upload = SimpleUploadedFile("truth.csv", csv_text.encode())
    staff_client.post(f"/admin/tournament/round/{round_.pk}/upload/", {"truth_file": upload}, follow=True)
    round_.refresh_from_db()
    assert round_.status == RoundStatus.GROUND_TRUTH_UPLOADED
    assert len(round_.truth_report["missing"]) == 5
    score_next_round(worker_id="s")
    page = staff_client.get(f"/admin/tournament/round/{round_.pk}/change/")
    assert b"Re-score" in page.content
    assert b"combined" in page.content
    staff_client.post(f"/admin/tournament/round/{round_.pk}/rescore/", {"reason": "typo in s0"}, follow=True)
    round_.refresh_from_db()
    assert round_.status == RoundStatus.GROUND_TRUTH_UPLOADED
    assert round_.rescores[0]["actor"] == "operator"
