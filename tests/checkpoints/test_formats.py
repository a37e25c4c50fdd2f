"""Formats: the EmissionCheckpoint as stored, the CLI payload and exact prize lists."""

from datetime import timedelta

import pytest
from django.test import override_settings

from checkpoints.formats import cli_format, prizes
from checkpoints.selectors import aligned_period
from checkpoints.services import create_due_checkpoint
from tests.checkpoints.helpers import add_snapshot
from tests.factories import T0, make_model

pytestmark = pytest.mark.django_db
P1 = aligned_period(T0)


@pytest.fixture
@override_settings(CRUNCH_PUBKEY="CrunchPK", COMPUTE_PROVIDER_PUBKEY="ComputePK", DATA_PROVIDER_PUBKEY="DataPK")
def seven_model_checkpoint():
    models = [make_model(cruncher_index=10 + i) for i in range(6)] + [make_model(cruncher_index=None)]
    for i, model in enumerate(models):
        add_snapshot(model, T0, 0.1 + i / 100, 3)
    checkpoint, _ = create_due_checkpoint(now=P1.end + timedelta(seconds=1))
    return checkpoint


def test_emission_is_the_emission_checkpoint_with_the_merkle_root(seven_model_checkpoint):
    emission = seven_model_checkpoint.emission
    assert set(emission) == {
        "crunch",
        "cruncher_rewards",
        "compute_provider_rewards",
        "data_provider_rewards",
        "merkle_root",
    }
    assert emission["crunch"] == "CrunchPK"
    assert [r["cruncher_index"] for r in emission["cruncher_rewards"]] == [10, 11, 12, 13, 14, 15]
    assert emission["data_provider_rewards"] == [{"provider": "DataPK", "reward_pct": 1_000_000_000}]


def test_cli_format_is_in_percent_keyed_by_cruncher_index_with_the_root(seven_model_checkpoint):
    cli = cli_format(seven_model_checkpoint)
    assert cli["crunch"] == "CrunchPK"
    assert cli["computeProvider"] == {"ComputePK": 100.0}
    assert cli["dataProvider"] == {"DataPK": 100.0}
    assert cli["merkleRoot"] == seven_model_checkpoint.merkle_root
    assert list(cli["crunchEmission"]) == ["10", "11", "12", "13", "14", "15"]
    # 7 ranked (tiers 85 % + 15/7 % each); the 7th has no index: its 5+15/7 % is shared by the six
    assert cli["crunchEmission"]["10"] == pytest.approx(35 + 15 / 7 + (5 + 15 / 7) / 6, abs=1e-7)
    assert sum(cli["crunchEmission"].values()) == pytest.approx(100.0, abs=1e-6)


@pytest.mark.parametrize("total", [0, 1, 7, 999, 10**6 + 3, 123_456_789_012])
def test_prizes_are_integers_that_add_up_to_the_total(seven_model_checkpoint, total):
    paid = prizes(seven_model_checkpoint, total_prize=total)
    assert sum(p["prize"] for p in paid) == total
    assert all(isinstance(p["prize"], int) and p["prize"] >= 0 for p in paid)
    ranked_paid = [item["model_id"] for item in seven_model_checkpoint.ranking if item["reward_pct"]]
    assert [p["model"] for p in paid] == ranked_paid  # the unindexed model gets no prize
    assert paid[0]["prizeId"] == f"{seven_model_checkpoint.pk}-{ranked_paid[0]}"
    assert paid[0]["timestamp"] == int(P1.end.timestamp())


@pytest.mark.parametrize("bad", [-1, 1.5, "100", True])
def test_prizes_refuse_a_total_that_is_not_a_non_negative_integer(seven_model_checkpoint, bad):
    with pytest.raises(ValueError, match="total_prize"):
        prizes(seven_model_checkpoint, total_prize=bad)
