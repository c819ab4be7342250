"""dr_contracts.ed25519_sodium: libsodium Ed25519 is a drop-in for cryptography's, no laxer."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_contracts import ed25519_sodium
from dr_contracts.keys import SigningKey

# The order of the Ed25519 group (RFC 8032): a valid S is < L.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=2048))
def test_signatures_are_the_same_bytes_as_cryptography(message: bytes) -> None:
    key = SigningKey.generate()
    signature = key.sign(message)  # libsodium
    assert signature == key.private_key.sign(message)  # RFC 8032 signatures are deterministic
    key.public_key.verify(signature, message)  # cryptography accepts libsodium's
    ed25519_sodium.verify(key.public_key, key.private_key.sign(message), message)  # and back


def test_altered_signature_message_or_key_is_refused() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    message = b"dr-link-message-v1\x00payload"
    signature = key.sign(message)
    for bad_signature, bad_message, public in (
        (bytes([signature[0] ^ 1]) + signature[1:], message, key.public_key),
        (signature, message + b"!", key.public_key),
        (signature, message, other.public_key),
        (signature[:63], message, key.public_key),
        (b"", message, key.public_key),
    ):
        with pytest.raises(InvalidSignature):
            ed25519_sodium.verify(public, bad_signature, bad_message)


def test_non_canonical_s_is_refused_by_both_libraries() -> None:
    """S + L verifies the same equation; a malleable copy must be refused."""
    key = SigningKey.generate()
    message = b"ack"
    signature = key.sign(message)
    s = int.from_bytes(signature[32:], "little") + GROUP_ORDER
    malleated = signature[:32] + s.to_bytes(32, "little")
    with pytest.raises(InvalidSignature):
        key.public_key.verify(malleated, message)
    with pytest.raises(InvalidSignature):
        ed25519_sodium.verify(key.public_key, malleated, message)


def test_small_order_public_key_is_refused() -> None:
    """The identity point as a key with an identity R and S = 0 "verifies" any message in a
    lax implementation; libsodium refuses it."""
    identity = (1).to_bytes(32, "little")
    weak_key = Ed25519PublicKey.from_public_bytes(identity)
    forged = identity + bytes(32)
    with pytest.raises(InvalidSignature):
        ed25519_sodium.verify(weak_key, forged, b"any message")


def test_one_key_object_per_raw_key_is_cached() -> None:
    key = SigningKey.generate()
    again = Ed25519PublicKey.from_public_bytes(key.public_key.public_bytes_raw())
    ed25519_sodium.verify(key.public_key, key.sign(b"x"), b"x")
    ed25519_sodium.verify(again, key.sign(b"y"), b"y")
    assert ed25519_sodium._verify_key(key.public_key.public_bytes_raw()) is (
        ed25519_sodium._verify_key(again.public_bytes_raw())
    )
