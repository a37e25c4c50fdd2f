"""Local models carry their on-chain cruncher index in model.json; an operator's value wins."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from predictions.gateway.local import LocalModelGateway, ModelLoadError, read_identity
from predictions.models import ParticipantModel
from predictions.services import run_predict_cycle
from tests.factories import T0, make_config, make_model
from tests.predictions.helpers import DIMS, fill_tape, make_gateway, write_model

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(seconds=30)


def cycle(gateway, now=NOW):
    return run_predict_cycle(gateway=gateway, worker_id="w1", now=now)


def test_model_json_cruncher_index_fills_the_model_row(tmp_path):
    write_model(tmp_path, "good", manifest={"model_id": "g", "cruncher_index": 7})
    fill_tape()
    make_config(next_run_at=T0, scope_template=dict(DIMS))
    cycle(make_gateway(tmp_path))
    assert ParticipantModel.objects.get(model_id="g").cruncher_index == 7


def test_an_operator_set_cruncher_index_is_never_replaced(tmp_path):
    write_model(tmp_path, "good", manifest={"model_id": "g", "cruncher_index": 7})
    make_model(model_id="g", cruncher_index=3)
    fill_tape()
    make_config(next_run_at=T0, scope_template=dict(DIMS))
    cycle(make_gateway(tmp_path))
    assert ParticipantModel.objects.get(model_id="g").cruncher_index == 3


def test_an_empty_cruncher_index_is_filled_on_an_existing_model(tmp_path):
    write_model(tmp_path, "good", manifest={"model_id": "g", "cruncher_index": 5})
    make_model(model_id="g", cruncher_index=None)
    fill_tape()
    make_config(next_run_at=T0, scope_template=dict(DIMS))
    cycle(make_gateway(tmp_path))
    assert ParticipantModel.objects.get(model_id="g").cruncher_index == 5


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_a_cruncher_index_that_is_not_a_whole_number_refuses_the_model(tmp_path, bad):
    folder = write_model(tmp_path, "good", manifest={"model_id": "g", "cruncher_index": bad})
    with pytest.raises(ModelLoadError, match="cruncher_index"):
        read_identity(folder, "abc")


def test_example_models_are_indexed_except_one_kept_to_show_the_flag():
    gateway = LocalModelGateway(
        models_dir=Path(settings.BASE_DIR) / "examples" / "models",
        base_classname="cruncher.ModelBaseClass",
        timeout=2,
    )
    gateway.start()
    indexes = {r.identity.model_id: r.identity.cruncher_index for r in gateway.call("predict", ["BTC", 60, 5])}
    assert indexes == {"momentum": 0, "mean-reversion": 1, "coin_flip": None}
