"""The benchmark flag (docs/rules.md) through the model admin's HTTP views; a predict cycle keeps it."""

import pytest

from predictions.models import ParticipantModel
from predictions.services import set_benchmark
from tests.factories import make_model

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/predictions/participantmodel/"


def test_the_admin_action_flags_and_unflags_benchmarks(admin_client):
    a, b, c = make_model(model_id="a"), make_model(model_id="b"), make_model(model_id="c")
    response = admin_client.post(
        CHANGELIST, {"action": "flag_benchmark", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "2 model(s) flagged as benchmark." in response.content.decode()
    assert set(ParticipantModel.objects.filter(is_benchmark=True).values_list("model_id", flat=True)) == {"a", "b"}
    admin_client.post(CHANGELIST, {"action": "unflag_benchmark", "_selected_action": [b.pk, c.pk]})
    assert set(ParticipantModel.objects.filter(is_benchmark=True).values_list("model_id", flat=True)) == {"a"}
    # the list filter and the column
    page = admin_client.get(CHANGELIST + "?is_benchmark__exact=1").content.decode()
    assert "?is_benchmark__exact=1" in page
    assert page.count('class="field-model_id"') == 1


def test_set_benchmark_is_idempotent():
    make_model(model_id="x")
    assert set_benchmark(model_ids=["x"], is_benchmark=True) == 1
    assert set_benchmark(model_ids=["x"], is_benchmark=True) == 0
    assert set_benchmark(model_ids=["x", "nope"], is_benchmark=False) == 1
