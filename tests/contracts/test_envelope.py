"""Sealed envelope: round trip, and every way to tamper with one is refused specifically."""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest

from dr_contracts.enrolment import EnrolmentRecord, FingerException, FingerRecord, RequestReason
from dr_contracts.envelope import (
    SIGNATURE_CONTEXT,
    BadSignatureError,
    ContextMismatchError,
    DecryptionFailedError,
    EnvelopeError,
    EnvelopeTooLargeError,
    InvalidRecordError,
    MalformedEnvelopeError,
    ReplayedEnvelopeError,
    SignerKeyMismatchError,
    UnknownRecipientKeyError,
    UnsupportedEnvelopeVersionError,
    open_enrolment,
    open_envelope,
    peek_header,
    seal_enrolment,
    seal_record,
)
from dr_contracts.keys import (
    CentralDecryptionKey,
    CentralRecipientKey,
    FingerprintMismatchError,
    SigningKey,
)
from edge.biometrics.types import FingerPosition
from tests.fixtures.keys import KeyFiles

MakeRecord = Callable[..., EnrolmentRecord]


def _small_record() -> EnrolmentRecord:
    return EnrolmentRecord(
        enrolment_id="7f1d8a52-0f7e-4c36-9d0a-5a1c3e2b9f10",
        prerequest_number="ZX81ZX81ZX",
        device_id="dr-91228-01",
        agent_id="agent.martin",
        started_at=datetime(2026, 6, 1, 9, 0, tzinfo=UTC),
        completed_at=datetime(2026, 6, 1, 9, 4, tzinfo=UTC),
        reason=RequestReason.FIRST_REQUEST,
        fingers=(
            FingerRecord(position=FingerPosition.RIGHT_INDEX, exception=FingerException.UNDER_AGE),
        ),
    )


def _resign(envelope: bytes, signer: SigningKey, *, header_edit: dict[str, object]) -> bytes:
    """What an attacker holding *some* device key can do: edit the header and re-sign."""
    magic, version, header_bytes, ciphertext, _sig = cbor2.loads(envelope)
    header = cbor2.loads(header_bytes)
    header.update(header_edit)
    new_header = cbor2.dumps(header, canonical=True)
    digest = hashlib.sha512(ciphertext).digest()
    message = SIGNATURE_CONTEXT + struct.pack(">I", len(new_header)) + new_header + digest
    return cbor2.dumps(
        [magic, version, new_header, ciphertext, signer.sign(message)], canonical=True
    )


def test_seal_then_open_round_trip(
    make_record: MakeRecord, central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    record = make_record()
    envelope = seal_record(record, recipient=central_key.public_key(), signer=device_key)
    header = peek_header(envelope)
    assert header.device_id == record.device_id
    assert header.enrolment_id == record.enrolment_id
    assert header.recipient_key_id == central_key.key_id
    assert header.signer_key_id == device_key.key_id
    opened = open_enrolment(
        envelope,
        recipient_keys={central_key.key_id: central_key},
        device_public_key=device_key.public_key,
        expected_device_id=record.device_id,
    )
    assert opened.record == record
    assert opened.header == header
    # The plaintext is not visible in the envelope (sealed, not just signed).
    for blob in record.biometric_blobs():
        assert blob[:64] not in envelope


def test_two_seals_of_the_same_record_differ(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    record = _small_record()
    first = seal_record(record, recipient=central_key.public_key(), signer=device_key)
    second = seal_record(record, recipient=central_key.public_key(), signer=device_key)
    assert first != second  # fresh HPKE encapsulation each time


def test_every_single_byte_change_is_rejected(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    envelope = seal_record(_small_record(), recipient=central_key.public_key(), signer=device_key)
    keys = {central_key.key_id: central_key}
    kinds: set[type[EnvelopeError]] = set()
    for position in range(len(envelope)):
        altered = bytearray(envelope)
        altered[position] ^= 0x01
        with pytest.raises(EnvelopeError) as info:
            open_envelope(
                bytes(altered), recipient_keys=keys, device_public_key=device_key.public_key
            )
        kinds.add(type(info.value))
    # Header and framing changes are malformed or unsigned; ciphertext changes fail the signature.
    assert BadSignatureError in kinds
    assert kinds <= {
        BadSignatureError,
        SignerKeyMismatchError,
        MalformedEnvelopeError,
        UnsupportedEnvelopeVersionError,
        UnknownRecipientKeyError,
    }


def test_byte_changes_in_a_realistic_envelope_are_rejected(
    make_record: MakeRecord, central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    envelope = seal_record(make_record(), recipient=central_key.public_key(), signer=device_key)
    rng = random.Random(11)
    for position in rng.sample(range(len(envelope)), 150):
        altered = bytearray(envelope)
        altered[position] ^= 1 << rng.randrange(8)
        with pytest.raises(EnvelopeError):
            open_envelope(
                bytes(altered),
                recipient_keys={central_key.key_id: central_key},
                device_public_key=device_key.public_key,
            )


def test_truncated_or_extended_envelope_is_malformed(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    envelope = seal_record(_small_record(), recipient=central_key.public_key(), signer=device_key)
    for data in (envelope[:-1], envelope + b"\x00", b"", b"garbage", cbor2.dumps({"a": 1})):
        with pytest.raises(MalformedEnvelopeError):
            peek_header(data)
    with pytest.raises(EnvelopeTooLargeError):
        peek_header(b"\x00" * (8 * 1024 * 1024 + 1))
    magic, _version, *rest = cbor2.loads(envelope)
    with pytest.raises(UnsupportedEnvelopeVersionError):
        peek_header(cbor2.dumps([magic, 2, *rest], canonical=True))


def test_wrong_central_key_is_refused(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    envelope = seal_record(_small_record(), recipient=central_key.public_key(), signer=device_key)
    other = CentralDecryptionKey.generate()
    with pytest.raises(UnknownRecipientKeyError) as info:
        open_envelope(
            envelope, recipient_keys={other.key_id: other}, device_public_key=device_key.public_key
        )
    assert info.value.key_id == central_key.key_id
    # Even filed under the right key id, another private key cannot open it.
    with pytest.raises(DecryptionFailedError):
        open_envelope(
            envelope,
            recipient_keys={central_key.key_id: other},
            device_public_key=device_key.public_key,
        )


def test_envelope_signed_by_another_device_is_refused(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    envelope = seal_record(_small_record(), recipient=central_key.public_key(), signer=device_key)
    keys = {central_key.key_id: central_key}
    intruder = SigningKey.generate()
    # Re-signed as is: central checks against the registered key of the claimed device.
    resigned = _resign(envelope, intruder, header_edit={"sk": intruder.key_id})
    with pytest.raises(SignerKeyMismatchError):
        open_envelope(resigned, recipient_keys=keys, device_public_key=device_key.public_key)
    # Signature forged under the victim's key id.
    forged = _resign(envelope, intruder, header_edit={})
    with pytest.raises(BadSignatureError):
        open_envelope(forged, recipient_keys=keys, device_public_key=device_key.public_key)


def test_stolen_ciphertext_claimed_by_another_device_does_not_open(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    """A device re-signs another device's ciphertext under its own id: signature verifies with
    its own key, but the header is bound into HPKE's info, so opening fails."""
    envelope = seal_record(_small_record(), recipient=central_key.public_key(), signer=device_key)
    intruder = SigningKey.generate()
    stolen = _resign(envelope, intruder, header_edit={"dev": "dr-75056-03", "sk": intruder.key_id})
    with pytest.raises(DecryptionFailedError):
        open_envelope(
            stolen,
            recipient_keys={central_key.key_id: central_key},
            device_public_key=intruder.public_key,
            expected_device_id="dr-75056-03",
        )
    # A changed creation time (to dodge a replay window) breaks the binding the same way.
    retimed = _resign(envelope, device_key, header_edit={"t": 1_900_000_000_000_000})
    with pytest.raises(DecryptionFailedError):
        open_envelope(
            retimed,
            recipient_keys={central_key.key_id: central_key},
            device_public_key=device_key.public_key,
        )


def test_device_id_must_match_the_transport_identity(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    envelope = seal_record(_small_record(), recipient=central_key.public_key(), signer=device_key)
    with pytest.raises(ContextMismatchError) as info:
        open_envelope(
            envelope,
            recipient_keys={central_key.key_id: central_key},
            device_public_key=device_key.public_key,
            expected_device_id="dr-91228-02",
        )
    assert info.value.field == "device_id"


def test_replayed_envelope_is_refused(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    record = _small_record()
    envelope = seal_record(record, recipient=central_key.public_key(), signer=device_key)
    keys = {central_key.key_id: central_key}
    seen: set[str] = set()
    opened = open_envelope(
        envelope,
        recipient_keys=keys,
        device_public_key=device_key.public_key,
        seen_enrolment_ids=seen,
    )
    seen.add(opened.header.enrolment_id)
    with pytest.raises(ReplayedEnvelopeError) as info:
        open_envelope(
            envelope,
            recipient_keys=keys,
            device_public_key=device_key.public_key,
            seen_enrolment_ids=seen,
        )
    assert info.value.enrolment_id == record.enrolment_id


def test_record_disagreeing_with_its_header_is_refused(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    record = _small_record()
    keys = {central_key.key_id: central_key}
    mismatched = seal_enrolment(
        record.to_bytes(),
        device_id=record.device_id,
        enrolment_id="00000000-0000-4000-8000-000000000000",
        recipient=central_key.public_key(),
        signer=device_key,
    )
    with pytest.raises(ContextMismatchError) as info:
        open_enrolment(mismatched, recipient_keys=keys, device_public_key=device_key.public_key)
    assert info.value.field == "enrolment_id"
    garbage = seal_enrolment(
        b"not a record",
        device_id=record.device_id,
        enrolment_id=record.enrolment_id,
        recipient=central_key.public_key(),
        signer=device_key,
    )
    with pytest.raises(InvalidRecordError):
        open_enrolment(garbage, recipient_keys=keys, device_public_key=device_key.public_key)


def test_key_rotation(tmp_path: Path, key_files: KeyFiles, device_key: SigningKey) -> None:
    """Central rotates: it keeps the old key to open what devices sealed before; the device
    switches to the new pinned key when its configuration says so."""
    old_private = CentralDecryptionKey.load(key_files.central_private)
    device_recipient = CentralRecipientKey.load(
        key_files.central_public, pinned_fingerprint=key_files.central_fingerprint
    )
    before = seal_record(_small_record(), recipient=device_recipient, signer=device_key)

    new_private = CentralDecryptionKey.generate()
    new_private.save(tmp_path / "central-hpke-2.key")
    new_private.public_key().save(tmp_path / "central-hpke-2.pub")
    keyring = {k.key_id: k for k in (old_private, new_private)}

    # The device's new configuration pins the new key; the old pin no longer loads it.
    with pytest.raises(FingerprintMismatchError):
        CentralRecipientKey.load(
            tmp_path / "central-hpke-2.pub", pinned_fingerprint=key_files.central_fingerprint
        )
    new_recipient = CentralRecipientKey.load(
        tmp_path / "central-hpke-2.pub", pinned_fingerprint=new_private.fingerprint
    )
    after = seal_record(_small_record(), recipient=new_recipient, signer=device_key)
    assert peek_header(after).recipient_key_id == new_private.key_id

    for envelope in (before, after):
        opened = open_enrolment(
            envelope, recipient_keys=keyring, device_public_key=device_key.public_key
        )
        assert opened.record == _small_record()
    # Once the old key is retired, what was sealed to it is refused with a specific error.
    with pytest.raises(UnknownRecipientKeyError):
        open_envelope(
            before,
            recipient_keys={new_private.key_id: new_private},
            device_public_key=device_key.public_key,
        )


def test_sealing_refuses_bad_arguments(
    central_key: CentralDecryptionKey, device_key: SigningKey
) -> None:
    record = _small_record()
    seal = functools.partial(
        seal_enrolment, record.to_bytes(), recipient=central_key.public_key(), signer=device_key
    )
    with pytest.raises(ValueError, match="device id"):
        seal(device_id="station-1", enrolment_id=record.enrolment_id)
    with pytest.raises(ValueError, match="UUID"):
        seal(device_id=record.device_id, enrolment_id="42")
    with pytest.raises(ValueError, match="timezone"):
        seal(
            device_id=record.device_id,
            enrolment_id=record.enrolment_id,
            created_at=datetime(2026, 1, 1),
        )
    assert peek_header(seal(device_id=record.device_id, enrolment_id=record.enrolment_id))
