"""Transaction hashes an operator confirms: checked exactly for the chains the deployment settles on.

- Solana (always): a transaction signature, base58 that decodes to exactly 64 bytes.
- EVM (only when SETTLEMENT_CHAINS includes `evm`): `0x` + exactly 64 hex digits.

Anything else (a short hex string, a hash of the wrong length, an EVM hash on a Solana-only
deployment) is refused with a message that says what was expected.
"""

import re
from typing import Any

from django.conf import settings

SETTLEMENT_CHOICES = ("solana", "evm")  # checked at start by coordinator_site.checks
SOLANA_SIGNATURE_BYTES = 64
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: i for i, char in enumerate(_BASE58_ALPHABET)}
_EVM_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
TX_HASH_MAX_LENGTH = 128


class InvalidTxHash(ValueError):
    """A transaction hash that is empty or not a valid hash of a chain this deployment settles on."""


def base58_decode(text: str) -> bytes | None:
    """The bytes `text` encodes in Bitcoin/Solana base58, or None if a character is not base58."""
    number = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_zeros + body


def is_solana_signature(text: str) -> bool:
    decoded = base58_decode(text)
    return decoded is not None and len(decoded) == SOLANA_SIGNATURE_BYTES


def validate_tx_hash(tx_hash: Any, *, chains: tuple[str, ...] | list[str] | None = None) -> str:
    """The stripped hash, or InvalidTxHash naming the accepted formats.

    `chains`: the settlement chains (default: settings.SETTLEMENT_CHAINS).
    """
    chains = tuple(settings.SETTLEMENT_CHAINS if chains is None else chains)
    if not isinstance(tx_hash, str) or not tx_hash.strip():
        raise InvalidTxHash("tx_hash is required")
    tx_hash = tx_hash.strip()
    if len(tx_hash) > TX_HASH_MAX_LENGTH:
        raise InvalidTxHash(f"tx_hash is longer than {TX_HASH_MAX_LENGTH} characters")
    if "solana" in chains and is_solana_signature(tx_hash):
        return tx_hash
    if "evm" in chains and _EVM_HASH.fullmatch(tx_hash):
        return tx_hash
    expected = []
    if "solana" in chains:
        expected.append("a Solana transaction signature (base58 of 64 bytes, 87-88 characters)")
    if "evm" in chains:
        expected.append("an EVM transaction hash (0x + 64 hex digits)")
    raise InvalidTxHash(f"tx_hash must be {' or '.join(expected)}; got {tx_hash[:20]!r}")
