"""Templates of an enrolment sealed back to one device, for the identity check at handover.

When the card is available at the mairie, the station asks central for the enrolment's
templates to compare a live finger 1:1. Central seals them with HPKE (same suite as the
enrolment envelope) to the *device's handover key*, a hybrid ML-KEM-768 + X25519 key made at
provisioning alongside the Ed25519 signing key (the signing key cannot decrypt). The key
classes are those of :mod:`dr_contracts.keys` (``CentralDecryptionKey`` holds any such key).

Wire form: CBOR ``["DRHND", 1, ciphertext]``; ``info`` binds the device id and the request
number, so a sealed answer for another device or another request does not open. Plaintext:
canonical CBOR ``{"num": <request number>, "fingers": [{"pos": int, "tpl": bytes}, ...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cbor2
from cryptography.exceptions import InvalidTag

from dr_contracts.keys import HPKE_SUITE, CentralDecryptionKey, CentralRecipientKey
from edge.biometrics.types import FingerPosition

HANDOVER_MAGIC: Final = "DRHND"
HANDOVER_INFO: Final = b"dr-handover-templates-v1\x00"


class HandoverError(ValueError):
    """Sealed templates that cannot be used (malformed, not for this device or request)."""


@dataclass(frozen=True, slots=True)
class HandoverTemplate:
    position: FingerPosition
    template: bytes

    def __repr__(self) -> str:
        return f"HandoverTemplate({self.position.name}, <{len(self.template)} bytes>)"


def _info(device_id: str, request_number: str) -> bytes:
    return HANDOVER_INFO + f"{device_id}\x00{request_number}".encode("ascii")


def seal_handover(
    templates: list[HandoverTemplate],
    *,
    request_number: str,
    device_id: str,
    device_key: CentralRecipientKey,
) -> bytes:
    """Central side: seal the templates to the device's handover public key."""
    plaintext = cbor2.dumps(
        {
            "num": request_number,
            "fingers": [{"pos": int(t.position), "tpl": t.template} for t in templates],
        },
        canonical=True,
    )
    ciphertext = HPKE_SUITE.encrypt(
        plaintext, device_key.hpke_key, info=_info(device_id, request_number)
    )
    return cbor2.dumps([HANDOVER_MAGIC, 1, ciphertext])


def open_handover(
    data: bytes, *, device_key: CentralDecryptionKey, device_id: str, request_number: str
) -> list[HandoverTemplate]:
    """Device side: open templates sealed to this device for ``request_number``."""
    try:
        magic, version, ciphertext = cbor2.loads(data)
    except (cbor2.CBORDecodeError, TypeError, ValueError) as exc:
        raise HandoverError(f"not sealed handover templates: {exc}") from exc
    if magic != HANDOVER_MAGIC or version != 1 or not isinstance(ciphertext, bytes):
        raise HandoverError("not sealed handover templates (version 1)")
    try:
        plaintext = HPKE_SUITE.decrypt(
            ciphertext, device_key.hpke_key, info=_info(device_id, request_number)
        )
    except InvalidTag:
        raise HandoverError("cannot open: not for this device or this request") from None
    content = cbor2.loads(plaintext)
    if content.get("num") != request_number:
        raise HandoverError("sealed templates are for another request")
    try:
        return [
            HandoverTemplate(position=FingerPosition(f["pos"]), template=bytes(f["tpl"]))
            for f in content["fingers"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise HandoverError(f"bad sealed templates: {exc}") from exc
