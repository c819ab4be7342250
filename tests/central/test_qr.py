"""The signed pre-request QR payload, checked offline."""

from __future__ import annotations

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dr_contracts.qr import (
    QrForgedError,
    QrMalformedError,
    encode_prerequest_qr,
    verify_prerequest_qr,
)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_round_trip_and_qr_alphanumeric_mode(key: Ed25519PrivateKey) -> None:
    payload = encode_prerequest_qr("ab12-cd34-56", signing_key=key)
    assert verify_prerequest_qr(payload, central_keys=[key.public_key()]) == "AB12CD3456"
    qr = segno.make(payload, error="m")
    assert qr.mode == "alphanumeric"
    assert qr.version <= 7


def test_rotated_keys_are_picked_by_key_id(key: Ed25519PrivateKey) -> None:
    old = Ed25519PrivateKey.generate()
    payload = encode_prerequest_qr("AB12CD3456", signing_key=old)
    keys = [key.public_key(), old.public_key()]
    assert verify_prerequest_qr(payload, central_keys=keys) == "AB12CD3456"


def test_altered_number_is_forged(key: Ed25519PrivateKey) -> None:
    payload = encode_prerequest_qr("AB12CD3456", signing_key=key)
    altered = payload.replace("AB12CD3456", "AB12CD3457")
    with pytest.raises(QrForgedError):
        verify_prerequest_qr(altered, central_keys=[key.public_key()])


def test_other_signer_is_forged(key: Ed25519PrivateKey) -> None:
    payload = encode_prerequest_qr("AB12CD3456", signing_key=Ed25519PrivateKey.generate())
    with pytest.raises(QrForgedError):
        verify_prerequest_qr(payload, central_keys=[key.public_key()])


def test_reused_key_id_with_wrong_signature_is_forged(key: Ed25519PrivateKey) -> None:
    payload = encode_prerequest_qr("AB12CD3456", signing_key=key)
    head, sig = payload.rsplit(":", 1)
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    with pytest.raises(QrForgedError):
        verify_prerequest_qr(f"{head}:{flipped}", central_keys=[key.public_key()])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "AB12CD3456",
        "DRPR1:AB12CD3456",
        "DRPR2:AB12CD3456:00000000:AAAA",
        "DRPR1:ab12cd3456:X:Y",
    ],
)
def test_malformed(text: str, key: Ed25519PrivateKey) -> None:
    with pytest.raises(QrMalformedError):
        verify_prerequest_qr(text, central_keys=[key.public_key()])
