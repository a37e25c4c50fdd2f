"""The checkpoint writes say what they accept: status choices listed, tx hashes checked exactly."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from checkpoints.txhash import InvalidTxHash, validate_tx_hash
from reports.services import api_key_create
from tests.factories import make_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    _, raw = api_key_create(name="ops", scope="admin")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


SOLANA_SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"
EVM_HASH = "0x" + "ab" * 32


def test_an_unknown_status_is_400_listing_the_valid_choices(admin):
    checkpoint = make_checkpoint(status="SUBMITTED", tx_hash=SOLANA_SIG)
    response = admin.patch(f"/reports/checkpoints/{checkpoint.pk}/status", {"status": "claimable"}, format="json")
    assert response.status_code == 400
    message = str(response.json()["status"])
    for choice in ("PENDING", "SUBMITTED", "CLAIMABLE", "PAID"):
        assert choice in message


@pytest.mark.parametrize(
    "bad",
    [
        "0x1234abcd",  # hex of the wrong length
        "1234abcd",
        EVM_HASH,  # an EVM hash on a Solana-only deployment
        SOLANA_SIG[:-4],  # base58, but not 64 bytes
        SOLANA_SIG + "11",
        "5" * 64,
    ],
)
def test_confirm_refuses_anything_but_a_solana_signature_by_default(admin, bad):
    checkpoint = make_checkpoint()
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", {"tx_hash": bad}, format="json")
    assert response.status_code == 400
    assert "Solana transaction signature" in str(response.json()["tx_hash"])


def test_confirm_accepts_a_solana_signature(admin):
    checkpoint = make_checkpoint()
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", {"tx_hash": SOLANA_SIG}, format="json")
    assert response.status_code == 200
    assert response.json()["tx_hash"] == SOLANA_SIG


@override_settings(SETTLEMENT_CHAINS=["solana", "evm"])
def test_an_evm_hash_is_accepted_only_when_the_deployment_settles_on_evm(admin):
    checkpoint = make_checkpoint()
    response = admin.post(f"/reports/checkpoints/{checkpoint.pk}/confirm", {"tx_hash": EVM_HASH}, format="json")
    assert response.status_code == 200
    with pytest.raises(InvalidTxHash, match="0x \\+ 64 hex"):
        validate_tx_hash("0x1234abcd")
    with pytest.raises(InvalidTxHash):
        validate_tx_hash("ab" * 32)  # no 0x


def test_an_evm_only_deployment_refuses_solana_signatures():
    with pytest.raises(InvalidTxHash):
        validate_tx_hash(SOLANA_SIG, chains=["evm"])
    assert validate_tx_hash(EVM_HASH, chains=["evm"]) == EVM_HASH


@override_settings(SETTLEMENT_CHAINS=["solana", "tron"])
def test_an_unknown_settlement_chain_fails_the_start_up_checks():
    from coordinator_site.checks import check_settlement_chains

    [error] = check_settlement_chains()
    assert error.id == "coordinator.E012"
    assert "tron" in error.msg
