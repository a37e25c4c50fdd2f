"""The challenge package participants install validates and scores exactly like the node's defaults."""

import importlib
import importlib.util
import math

import pytest
from pydantic import ValidationError

from coordinator_site.contract import STARTER_CONTRACT, StarterGroundTruth, import_path
from coordinator_site.scaffold.doctor import node_configured_by

from .helpers import generate

OUTPUTS = [
    {"p_up": 0.0},
    {"p_up": 0.42},
    {"p_up": 1.0},
    {"p_up": 1},
    {"p_up": 1.0000001},
    {"p_up": -0.0001},
    {"p_up": math.nan},
    {"p_up": math.inf},
    {"p_up": "0.5"},
    {"p_up": True},
    {"p_up": None},
    {"p_up": 0.5, "extra": 1},
    {},
]
CASES = [(p, up) for p in (0.0, 1e-18, 0.2, 0.5, 0.93, 1.0) for up in (True, False)]


@pytest.fixture
def challenge(tmp_path):
    workspace = generate(tmp_path, slug="parity")
    with node_configured_by(workspace.env):
        yield {
            "validation": importlib.import_module("crunch_parity.validation"),
            "scoring": importlib.import_module("crunch_parity.scoring"),
        }


def node_accepts(output) -> dict | None:
    try:
        return STARTER_CONTRACT.output_type.model_validate(output).model_dump()
    except ValidationError:
        return None


def challenge_accepts(validate, output) -> dict | None:
    try:
        return validate(output)
    except ValueError:
        return None


@pytest.mark.parametrize("output", OUTPUTS, ids=repr)
def test_validation_accepts_and_normalises_exactly_what_the_starter_output_type_does(challenge, output):
    assert challenge_accepts(challenge["validation"].validate_output, output) == node_accepts(output)


@pytest.mark.parametrize("output", OUTPUTS, ids=repr)
def test_validation_matches_the_node_default_validation(challenge, output):
    """Same verdict and normalisation as the node: its validator slot, then its output_type."""
    from predictions.services import validated_output

    node_validate = import_path(
        STARTER_CONTRACT.callables["INFERENCE_OUTPUT_VALIDATOR"], variable="INFERENCE_OUTPUT_VALIDATOR"
    )

    def node_pipeline(value):
        return validated_output(value, validator=node_validate, output_type=STARTER_CONTRACT.output_type)

    assert challenge_accepts(challenge["validation"].validate_output, output) == challenge_accepts(
        node_pipeline, output
    )


@pytest.mark.parametrize("name", ["brier_score", "log_loss_score"])
def test_scoring_matches_the_node_scoring_functions(challenge, name):
    if importlib.util.find_spec("scoring.functions") is None:
        pytest.skip("scoring.functions (issue 5) is not merged yet")
    node_score = getattr(importlib.import_module("scoring.functions"), name)
    ours = getattr(challenge["scoring"], name)
    for p_up, up in CASES:
        truth = StarterGroundTruth(
            entry_price=100.0,
            resolved_price=101.0 if up else 99.0,
            **{"return": 0.01 if up else -0.01},
            direction_up=up,
        )
        prediction = STARTER_CONTRACT.output_type(p_up=p_up)
        node_value = node_score(prediction, truth)
        node_value = node_value["value"] if isinstance(node_value, dict) else node_value.value
        assert ours(prediction, truth)["value"] == pytest.approx(node_value, rel=1e-9, abs=1e-12), (p_up, up)
