"""Ingest over the real parts: sealed envelopes, real keys, SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest

from central.models import AMOUNT_GUYANE_CENTS
from dr_contracts.acks import Ack, verify_ack
from dr_contracts.enrolment import FingerException, FingerRecord, RequestReason
from dr_contracts.identifiers import parse_request_number
from dr_contracts.keys import SigningKey
from dr_contracts.rejections import Rejection, RejectionCode
from edge.biometrics.types import FingerPosition
from tests.fixtures.central import CentralKit

DEVICE = "dr-91228-01"


def _code(answer: Ack | Rejection) -> RejectionCode:
    assert isinstance(answer, Rejection), f"expected a rejection, got {answer!r}"
    return answer.code


def _ack(answer: Ack | Rejection) -> Ack:
    assert isinstance(answer, Ack), f"expected an ack, got {answer!r}"
    return answer


@pytest.fixture
def kit(central_kit: CentralKit) -> CentralKit:
    central_kit.add_device(DEVICE)
    return central_kit


def test_ingest_records_and_acknowledges(kit: CentralKit) -> None:
    pre = kit.prerequest()
    record = kit.record(pre)
    ack = _ack(kit.service.ingest(kit.seal(record), device_id=DEVICE))
    checked = verify_ack(
        ack.to_bytes(), central_keys=[kit.service.signing_public_key], device_id=DEVICE
    )
    assert checked == ack
    assert parse_request_number(ack.request_number) == ack.request_number
    assert (ack.enrolment_id, ack.prerequest_number) == (record.enrolment_id, pre.number)
    again = kit.service.lookup_prerequest(pre.number, device_id=DEVICE)
    assert _code(again) is RejectionCode.PREREQUEST_CONSUMED
    status = kit.service.request_status(ack.request_number)
    assert not isinstance(status, Rejection)
    assert status.stage == "received"
    stored = kit.service.enrolment_record(ack.request_number)
    assert stored == record


def test_duplicate_gets_the_same_ack_and_no_second_number(kit: CentralKit) -> None:
    envelope = kit.enrolment()
    first = _ack(kit.service.ingest(envelope, device_id=DEVICE))
    second = _ack(kit.service.ingest(envelope, device_id=DEVICE))
    assert second.to_bytes() == first.to_bytes()
    assert list(kit.service.iter_request_numbers()) == [first.request_number]


def test_same_enrolment_id_with_other_content_is_a_replay(kit: CentralKit) -> None:
    pre = kit.prerequest()
    record = kit.record(pre)
    _ack(kit.service.ingest(kit.seal(record), device_id=DEVICE))
    other = kit.record(kit.prerequest(), enrolment_id=record.enrolment_id)
    assert _code(kit.service.ingest(kit.seal(other), device_id=DEVICE)) is RejectionCode.REPLAYED


def test_forged_signature(kit: CentralKit) -> None:
    record = kit.record(kit.prerequest())
    forged = kit.seal(record, signer=SigningKey.generate())
    assert _code(kit.service.ingest(forged, device_id=DEVICE)) is RejectionCode.BAD_SIGNATURE


def test_altered_bytes_are_refused_and_central_keeps_serving(kit: CentralKit) -> None:
    pre = kit.prerequest()
    envelope = bytearray(kit.enrolment(pre))
    for offset in (len(envelope) // 2, len(envelope) - 10):
        altered = bytearray(envelope)
        altered[offset] ^= 0x40
        code = _code(kit.service.ingest(bytes(altered), device_id=DEVICE))
        assert code in {RejectionCode.BAD_SIGNATURE, RejectionCode.MALFORMED_ENVELOPE}
    for garbage in (b"", b"\x00", os.urandom(300), b"\x85" + os.urandom(64)):
        assert _code(kit.service.ingest(garbage, device_id=DEVICE)) is (
            RejectionCode.MALFORMED_ENVELOPE
        )
    _ack(kit.service.ingest(bytes(envelope), device_id=DEVICE))


def test_oversized_envelope(kit: CentralKit) -> None:
    huge = b"\x00" * (9 * 1024 * 1024)
    assert _code(kit.service.ingest(huge, device_id=DEVICE)) is RejectionCode.TOO_LARGE


def test_unknown_device(kit: CentralKit) -> None:
    record = kit.record(kit.prerequest(), device_id="dr-91228-02")
    envelope = kit.seal(record, signer=SigningKey.generate())
    answer = kit.service.ingest(envelope, device_id="dr-91228-02")
    assert _code(answer) is RejectionCode.UNKNOWN_DEVICE


def test_envelope_from_another_device_topic(kit: CentralKit) -> None:
    kit.add_device("dr-91228-02")
    envelope = kit.enrolment()
    answer = kit.service.ingest(envelope, device_id="dr-91228-02")
    assert _code(answer) is RejectionCode.DEVICE_MISMATCH


def test_revocation_takes_effect_at_once(kit: CentralKit) -> None:
    told: list[str] = []
    kit.service.add_revocation_listener(told.append)
    envelope = kit.enrolment()
    kit.service.revoke_device(DEVICE)
    assert told == [DEVICE]
    assert _code(kit.service.ingest(envelope, device_id=DEVICE)) is RejectionCode.REVOKED_DEVICE
    pre = kit.prerequest()
    lookup = kit.service.lookup_prerequest(pre.number, device_id=DEVICE)
    assert _code(lookup) is RejectionCode.REVOKED_DEVICE
    assert _code(kit.service.lease_numbers(DEVICE, count=2)) is RejectionCode.REVOKED_DEVICE


def test_consumed_and_unknown_prerequest(kit: CentralKit) -> None:
    pre = kit.prerequest()
    _ack(kit.service.ingest(kit.enrolment(pre), device_id=DEVICE))
    second = kit.service.ingest(kit.enrolment(pre), device_id=DEVICE)
    assert _code(second) is RejectionCode.PREREQUEST_CONSUMED
    record = kit.record(pre, prerequest_number="ZZZZZZZZZ9")
    answer = kit.service.ingest(kit.seal(record), device_id=DEVICE)
    assert _code(answer) is RejectionCode.PREREQUEST_UNKNOWN


def test_expired_prerequest(kit: CentralKit) -> None:
    pre = kit.prerequest()
    kit.clock.advance(timedelta(days=366))
    answer = kit.service.ingest(kit.enrolment(pre), device_id=DEVICE)
    assert _code(answer) is RejectionCode.PREREQUEST_EXPIRED
    lookup = kit.service.lookup_prerequest(pre.number, device_id=DEVICE)
    assert _code(lookup) is RejectionCode.PREREQUEST_EXPIRED


def test_stamp_required_consumed_once_and_kept_on_rejection(kit: CentralKit) -> None:
    pre = kit.prerequest(reason=RequestReason.LOSS)
    answer = kit.service.ingest(kit.enrolment(pre), device_id=DEVICE)
    assert _code(answer) is RejectionCode.STAMP_REQUIRED
    stamp = kit.service.create_stamp()
    # A rejection for another reason (bad template) must leave the stamp unused.
    bad = kit.record(pre, tax_stamp_number=stamp.number)
    broken = FingerRecord(
        position=bad.fingers[0].position,
        template=bad.fingers[0].template[:24] + b"\xff" * 10,  # type: ignore[index]
        quality=bad.fingers[0].quality,
        image_png=bad.fingers[0].image_png,
    )
    bad = kit.record(pre, tax_stamp_number=stamp.number, fingers=(broken, bad.fingers[1]))
    assert _code(kit.service.ingest(kit.seal(bad), device_id=DEVICE)) is (
        RejectionCode.INVALID_TEMPLATE
    )
    assert kit.service.check_stamp(stamp.number, device_id=DEVICE) == stamp
    ack = _ack(
        kit.service.ingest(kit.enrolment(pre, tax_stamp_number=stamp.number), device_id=DEVICE)
    )
    used = kit.service.check_stamp(stamp.number, device_id=DEVICE)
    assert _code(used) is RejectionCode.STAMP_USED
    other = kit.prerequest(reason=RequestReason.THEFT)
    again = kit.service.ingest(
        kit.enrolment(other, tax_stamp_number=stamp.number), device_id=DEVICE
    )
    assert _code(again) is RejectionCode.STAMP_USED
    assert kit.service.lookup_prerequest(other.number, device_id=DEVICE).number == other.number  # type: ignore[union-attr]
    assert ack.request_number


def test_stamp_states_and_amounts(kit: CentralKit) -> None:
    stamp = kit.service.create_stamp()
    kit.service.cancel_stamp(stamp.number)
    assert _code(kit.service.check_stamp(stamp.number, device_id=DEVICE)) is (
        RejectionCode.STAMP_CANCELLED
    )
    assert _code(kit.service.check_stamp("1" * 16, device_id=DEVICE)) is RejectionCode.STAMP_UNKNOWN
    assert _code(kit.service.check_stamp("12", device_id=DEVICE)) is RejectionCode.STAMP_MALFORMED
    guyane = kit.service.create_stamp(amount_cents=AMOUNT_GUYANE_CENTS)
    assert _code(kit.service.check_stamp(guyane.number, device_id=DEVICE)) is (
        RejectionCode.STAMP_WRONG_AMOUNT
    )
    kit.add_device("dr-97302-01", commune="Cayenne")
    assert kit.service.check_stamp(guyane.number, device_id="dr-97302-01") == guyane
    old = kit.service.create_stamp()
    kit.clock.advance(timedelta(days=366))
    assert _code(kit.service.check_stamp(old.number, device_id=DEVICE)) is (
        RejectionCode.STAMP_EXPIRED
    )


def test_leased_number_is_used_once_and_only_by_its_device(kit: CentralKit) -> None:
    kit.add_device("dr-91228-02")
    grant = kit.service.lease_numbers(DEVICE, count=3)
    assert not isinstance(grant, Rejection)
    first, second, _ = list(grant.lease.numbers())
    ack = _ack(kit.service.ingest(kit.enrolment(request_number=first), device_id=DEVICE))
    assert ack.request_number == first
    reuse = kit.service.ingest(kit.enrolment(request_number=first), device_id=DEVICE)
    assert _code(reuse) is RejectionCode.NUMBER_ALREADY_USED
    stolen = kit.enrolment(request_number=second, device_id="dr-91228-02")
    answer = kit.service.ingest(stolen, device_id="dr-91228-02")
    assert _code(answer) is RejectionCode.NUMBER_NOT_LEASED
    fresh = _ack(kit.service.ingest(kit.enrolment(), device_id=DEVICE))
    assert fresh.request_number not in grant.lease.numbers()


def test_lease_limits(kit: CentralKit) -> None:
    for _ in range(4):
        assert not isinstance(kit.service.lease_numbers(DEVICE, count=2), Rejection)
    assert _code(kit.service.lease_numbers(DEVICE, count=2)) is RejectionCode.LEASE_LIMIT
    with pytest.raises(ValueError, match="lease count"):
        kit.service.lease_numbers(DEVICE, count=0)
    kit.clock.advance(timedelta(days=31))
    assert not isinstance(kit.service.lease_numbers(DEVICE, count=2), Rejection)


def _exception(position: FingerPosition, code: FingerException) -> FingerRecord:
    return FingerRecord(position=position, exception=code, attempts=0)


def test_finger_rules(kit: CentralKit) -> None:
    pre = kit.prerequest()
    base = kit.record(pre)
    one = kit.record(pre, fingers=base.fingers[:1])
    assert _code(kit.service.ingest(kit.seal(one), device_id=DEVICE)) is RejectionCode.FINGER_RULES
    under_age = kit.record(
        pre,
        fingers=(
            _exception(FingerPosition.RIGHT_INDEX, FingerException.UNDER_AGE),
            _exception(FingerPosition.LEFT_INDEX, FingerException.UNDER_AGE),
        ),
    )
    answer = kit.service.ingest(kit.seal(under_age), device_id=DEVICE)
    assert _code(answer) is RejectionCode.FINGER_RULES
    excused = kit.record(
        pre,
        fingers=(
            base.fingers[0],
            _exception(FingerPosition.LEFT_INDEX, FingerException.BANDAGED_INJURED),
        ),
    )
    _ack(kit.service.ingest(kit.seal(excused), device_id=DEVICE))


def test_child_under_12(kit: CentralKit) -> None:
    today = kit.clock.now.date()
    child = kit.prerequest(birth_date=date(today.year - 8, 1, 1), height_cm=130)
    with_fingers = kit.record(child)
    answer = kit.service.ingest(kit.seal(with_fingers), device_id=DEVICE)
    assert _code(answer) is RejectionCode.FINGER_RULES
    none = kit.record(
        child,
        fingers=(
            _exception(FingerPosition.RIGHT_INDEX, FingerException.UNDER_AGE),
            _exception(FingerPosition.LEFT_INDEX, FingerException.UNDER_AGE),
        ),
    )
    _ack(kit.service.ingest(kit.seal(none), device_id=DEVICE))


def test_template_position_must_match(kit: CentralKit) -> None:
    pre = kit.prerequest()
    base = kit.record(pre)
    right, left = base.fingers
    swapped = FingerRecord(
        position=FingerPosition.RIGHT_MIDDLE,
        template=right.template,
        quality=right.quality,
        image_png=right.image_png,
    )
    record = kit.record(pre, fingers=(swapped, left))
    answer = kit.service.ingest(kit.seal(record), device_id=DEVICE)
    assert _code(answer) is RejectionCode.INVALID_TEMPLATE


def test_reason_must_match_the_prerequest(kit: CentralKit) -> None:
    pre = kit.prerequest(reason=RequestReason.RENEWAL)
    record = kit.record(pre, reason=RequestReason.FIRST_REQUEST)
    answer = kit.service.ingest(kit.seal(record), device_id=DEVICE)
    assert _code(answer) is RejectionCode.INVALID_RECORD


def test_biometric_data_is_encrypted_at_rest(kit: CentralKit) -> None:
    record = kit.record(kit.prerequest())
    _ack(kit.service.ingest(kit.seal(record), device_id=DEVICE))
    with kit.service.store.transaction(write=False) as tx:
        rows = tx.all("SELECT nonce, ciphertext FROM biometrics")
    assert len(rows) == 1
    nonce, ciphertext = (bytes(v) for v in rows[0])
    assert len(nonce) == 12
    stored = ciphertext
    if kit.database.startswith("sqlite://"):  # and the files themselves, WAL included
        db = Path(kit.database.removeprefix("sqlite://"))
        stored += b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    for blob in record.biometric_blobs():
        assert blob[30:90] not in stored
    assert kit.service.enrolment_record(_ack_number(kit)) == record


def _ack_number(kit: CentralKit) -> str:
    return next(iter(kit.service.iter_request_numbers()))


def test_rotated_recipient_key_still_opens_old_envelopes(kit: CentralKit) -> None:
    from central.keyring import CentralKeyring
    from central.service import CentralService

    old_envelope = kit.enrolment()
    CentralKeyring.rotate_recipient_key(kit.key_dir)
    kit.service.close()
    kit.service = CentralService.open(database=kit.database, key_dir=kit.key_dir, clock=kit.clock)
    _ack(kit.service.ingest(old_envelope, device_id=DEVICE))
    _ack(kit.service.ingest(kit.enrolment(), device_id=DEVICE))


def test_batch_mixes_acks_and_rejections_in_one_commit(kit: CentralKit) -> None:
    shared = kit.prerequest()
    first, clash = kit.enrolment(shared), kit.enrolment(shared)
    good = kit.enrolment()
    forged = kit.seal(kit.record(kit.prerequest()), signer=SigningKey.generate())
    answers = kit.service.ingest_batch(
        [(first, DEVICE), (b"garbage", DEVICE), (clash, DEVICE), (good, DEVICE), (first, DEVICE),
         (forged, DEVICE)]
    )  # fmt: skip
    acks = [a for a in answers if isinstance(a, Ack)]
    assert [type(a).__name__ for a in answers] == [
        "Ack", "Rejection", "Rejection", "Ack", "Ack", "Rejection"
    ]  # fmt: skip
    assert _code(answers[1]) is RejectionCode.MALFORMED_ENVELOPE
    assert _code(answers[2]) is RejectionCode.PREREQUEST_CONSUMED
    assert _code(answers[5]) is RejectionCode.BAD_SIGNATURE
    assert acks[0].to_bytes() == acks[2].to_bytes()  # the duplicate inside the batch
    assert sorted(kit.service.iter_request_numbers()) == sorted({a.request_number for a in acks})
    # Nothing of the refused ones stayed behind: the clashing enrolment can't be recorded
    # later under another pre-request number by accident, and the stamp-free path is clean.
    assert _ack(kit.service.ingest(first, device_id=DEVICE)).to_bytes() == acks[0].to_bytes()
