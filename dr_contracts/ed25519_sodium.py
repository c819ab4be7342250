"""Ed25519 signing and verification through libsodium (PyNaCl), for the MQTT link's hot path.

Same algorithm, same keys and byte-identical signatures (RFC 8032 signatures are
deterministic) as ``cryptography``'s OpenSSL backend, which verifies about half as fast on
this kind of machine (measured alternately on the shared 2-core machine, 600-byte messages:
verify 60-79 us with libsodium against 112-172 us, sign 23-33 us against 35-44 us). Every
link message is signed once and verified once: four operations per RPC round trip, and an
enrolment's acknowledgement is signed twice by central and verified twice by the device.
libsodium is not more lenient: it refuses non-canonical ``S``, non-canonical and small-order
public keys and small-order ``R``, where OpenSSL refuses non-canonical ``S``.

Keys stay ``cryptography`` objects everywhere else. :class:`dr_contracts.keys.SigningKey` keeps
its own libsodium copy of its private key (built once, never cached by key bytes here); public
keys get a libsodium copy here, looked up by their raw bytes.
"""

from __future__ import annotations

import functools

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["signer_for", "verify"]

_CACHED_KEYS = 64  # central verifies many devices; a device knows one or two central keys


@functools.lru_cache(maxsize=_CACHED_KEYS)
def _verify_key(raw: bytes) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(raw)


def signer_for(private_key: Ed25519PrivateKey) -> nacl.signing.SigningKey:
    """A libsodium signer for ``private_key``: its signatures are the same bytes."""
    return nacl.signing.SigningKey(private_key.private_bytes_raw())


def verify(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """Check an Ed25519 signature; raise :class:`cryptography.exceptions.InvalidSignature`.

    Same contract as ``Ed25519PublicKey.verify(signature, data)``.
    """
    try:
        _verify_key(public_key.public_bytes_raw()).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError) as exc:
        raise InvalidSignature from exc
