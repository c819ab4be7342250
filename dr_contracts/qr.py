"""The pre-request QR code: the number signed by central, checked by the DR offline.

Payload (text, only characters of the QR *alphanumeric* mode, so the code stays small)::

    DRPR1:<number>:<key id>:<signature>
    |     |        |        +-- Ed25519 signature, base32 upper case without padding (103 chars)
    |     |        +-- first 8 hex digits (upper case) of SHA-256 of central's raw public key
    |     +-- the 10-character pre-request number
    +-- format and version

The signature covers ``b"dr-prerequest-qr-v1\\0" + number + key id``. The key id lets central
rotate its signing key: a DR holds the current and previous public keys and picks by id.
A scanned payload that is not exactly this shape is *malformed*; one whose signature does not
verify (altered number, another key, a made-up code) is *forged*.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dr_contracts.identifiers import IdentifierError, parse_prerequest_number

QR_PREFIX: Final = "DRPR1"
QR_SIGNATURE_CONTEXT: Final = b"dr-prerequest-qr-v1\x00"
_SIGNATURE_B32_LENGTH: Final = 103  # 64 bytes in base32, padding dropped


class QrError(ValueError):
    """A scanned QR payload that must not be trusted."""


class QrMalformedError(QrError):
    """Not a pre-request QR payload of this format."""


class QrForgedError(QrError):
    """Well formed, but not signed by central (or altered since)."""


def signing_key_id(public_key: Ed25519PublicKey) -> str:
    """Eight upper-case hex digits identifying one of central's signing keys."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:8].upper()


def encode_prerequest_qr(number: str, *, signing_key: Ed25519PrivateKey) -> str:
    """QR payload for pre-request ``number`` (normalised here), signed by central."""
    number = parse_prerequest_number(number)
    key_id = signing_key_id(signing_key.public_key())
    signature = signing_key.sign(QR_SIGNATURE_CONTEXT + f"{number}{key_id}".encode("ascii"))
    sig_text = base64.b32encode(signature).decode("ascii").rstrip("=")
    return f"{QR_PREFIX}:{number}:{key_id}:{sig_text}"


def verify_prerequest_qr(text: str, *, central_keys: Iterable[Ed25519PublicKey]) -> str:
    """The pre-request number carried by a scanned payload, once its signature checks.

    ``central_keys`` are central's signing public keys the DR trusts (current and previous).
    Raises :class:`QrMalformedError` or :class:`QrForgedError`.
    """
    parts = text.strip().split(":")
    if len(parts) != 4 or parts[0] != QR_PREFIX:
        raise QrMalformedError("not a pre-request QR code")
    _, raw_number, key_id, sig_text = parts
    try:
        number = parse_prerequest_number(raw_number)
    except IdentifierError as exc:
        raise QrMalformedError(f"bad number in QR code: {exc.reason}") from exc
    if number != raw_number or len(sig_text) != _SIGNATURE_B32_LENGTH:
        raise QrMalformedError("QR code fields have the wrong shape")
    try:
        signature = base64.b32decode(sig_text + "=" * (-len(sig_text) % 8))
    except binascii.Error as exc:
        raise QrMalformedError("QR code signature is not base32") from exc
    keys = {signing_key_id(key): key for key in central_keys}
    key = keys.get(key_id)
    if key is None:
        raise QrForgedError(f"QR code signed with unknown key id {key_id}")
    try:
        key.verify(signature, QR_SIGNATURE_CONTEXT + f"{number}{key_id}".encode("ascii"))
    except InvalidSignature as exc:
        raise QrForgedError("QR code signature does not verify") from exc
    return number
