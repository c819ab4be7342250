"""Enrolment record: round trip, strict decoding, validation naming the field at fault."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_contracts.enrolment import (
    DocumentKind,
    EnrolmentDecodeError,
    EnrolmentRecord,
    FingerException,
    FingerQuality,
    FingerRecord,
    InvalidEnrolmentError,
    RequestReason,
    UnsupportedSchemaVersionError,
)
from dr_contracts.identifiers import request_number_for
from edge.biometrics.types import FingerPosition
from tests.fixtures.keys import fingerprint_png, iso_template, sample_record

MakeRecord = Callable[..., EnrolmentRecord]


def _exception_only_record(**overrides: Any) -> EnrolmentRecord:
    fields: dict[str, Any] = {
        "enrolment_id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
        "prerequest_number": "A1B2C3D4E5",
        "device_id": "dr-2A004-02",
        "agent_id": "agent.durand",
        "started_at": datetime(2026, 5, 4, 10, 0, tzinfo=UTC),
        "completed_at": datetime(2026, 5, 4, 10, 5, tzinfo=UTC),
        "reason": RequestReason.FIRST_REQUEST,
        "fingers": (
            FingerRecord(
                position=FingerPosition.RIGHT_INDEX, exception=FingerException.UNDER_AGE, attempts=0
            ),
            FingerRecord(
                position=FingerPosition.LEFT_INDEX, exception=FingerException.UNDER_AGE, attempts=0
            ),
        ),
    }
    fields.update(overrides)
    return EnrolmentRecord(**fields)


def _cbor(record: EnrolmentRecord) -> dict[str, Any]:
    data: dict[str, Any] = cbor2.loads(record.to_bytes())
    return data


def _dumps(data: object) -> bytes:
    return cbor2.dumps(data, canonical=True)


def test_round_trip_of_a_two_finger_record(make_record: MakeRecord) -> None:
    record = make_record(
        tax_stamp_number="1234567890123456",
        request_number=request_number_for(42),
        reason=RequestReason.LOSS,
        documents=frozenset({DocumentKind.PHOTO, DocumentKind.LOSS_DECLARATION}),
    )
    data = record.to_bytes()
    decoded = EnrolmentRecord.from_bytes(data)
    assert decoded == record
    assert decoded.to_bytes() == data
    assert decoded.fingers[0].template == record.fingers[0].template
    assert decoded.fingers[1].image_png == record.fingers[1].image_png
    assert decoded.fingers[0].quality == record.fingers[0].quality


def test_round_trip_of_exceptions_and_optional_fields_absent() -> None:
    record = _exception_only_record()
    raw = _cbor(record)
    assert "stamp" not in raw
    assert "num" not in raw
    assert EnrolmentRecord.from_bytes(record.to_bytes()) == record


def test_real_iso_record_from_the_standard_is_accepted(shared_data: Path) -> None:
    template = (shared_data / "iso19794" / "iso19794-2_2005_appendix_c2.raw").read_bytes()
    rng = random.Random(3)
    finger = FingerRecord(
        position=FingerPosition.RIGHT_INDEX,
        template=template,
        quality=FingerQuality(score=70),
        image_png=fingerprint_png(rng),
    )
    record = _exception_only_record(fingers=(finger,))
    assert EnrolmentRecord.from_bytes(record.to_bytes()).fingers[0].template == template


def test_encoding_is_deterministic(make_record: MakeRecord) -> None:
    record = make_record()
    copy = dataclasses.replace(record)
    assert copy.to_bytes() == record.to_bytes()


def test_repr_never_shows_biometric_bytes(make_record: MakeRecord) -> None:
    record = make_record()
    text = repr(record) + str(record) + repr(record.fingers[0])
    for blob in record.biometric_blobs():
        assert blob[:16].hex() not in text
        assert repr(blob[:16])[2:-1] not in text
    assert "RIGHT_INDEX" in text


# --- decoding is strict -------------------------------------------------------------------


def test_unknown_field_is_rejected() -> None:
    raw = _cbor(_exception_only_record())
    raw["extra"] = 1
    with pytest.raises(EnrolmentDecodeError) as info:
        EnrolmentRecord.from_bytes(_dumps(raw))
    assert info.value.field == "extra"


@pytest.mark.parametrize("key", ["pre", "dev", "agent", "t0", "t1", "reason", "fingers", "docs"])
def test_missing_required_field_is_rejected(key: str) -> None:
    raw = _cbor(_exception_only_record())
    del raw[key]
    with pytest.raises(EnrolmentDecodeError) as info:
        EnrolmentRecord.from_bytes(_dumps(raw))
    assert info.value.field == key


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pre", 1234567890),
        ("pre", "a1b2c3d4e5"),  # not normalised
        ("pre", "A1B2C3"),
        ("dev", "dr-9122-01"),
        ("agent", ""),
        ("t0", "2026-05-04"),
        ("t1", 1.5),
        ("reason", "holiday"),
        ("id", b"\x00" * 15),
        ("docs", ["photo", "photo"]),
        ("docs", ["passport_of_the_cat"]),
        ("fingers", []),
        ("stamp", "12345"),
        ("num", "ABCDEFGHIJKL"),  # wrong check characters
    ],
)
def test_ill_typed_or_out_of_range_field_is_rejected(key: str, value: object) -> None:
    raw = _cbor(_exception_only_record())
    raw[key] = value
    with pytest.raises(EnrolmentDecodeError):
        EnrolmentRecord.from_bytes(_dumps(raw))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pos", 0),
        ("pos", 11),
        ("n", -1),
        ("n", 99),
        ("exc", "too_lazy"),
        ("tpl", b"FMR\x00 20\x00"),  # template and exception together
    ],
)
def test_bad_finger_entries_are_rejected(key: str, value: object) -> None:
    raw = _cbor(_exception_only_record())
    raw["fingers"][0][key] = value
    with pytest.raises(EnrolmentDecodeError) as info:
        EnrolmentRecord.from_bytes(_dumps(raw))
    assert info.value.field is not None
    assert info.value.field.startswith("fingers[0]")


def test_bad_capture_content_is_rejected(make_record: MakeRecord) -> None:
    raw = _cbor(make_record())
    raw["fingers"][0]["png"] = b"GIF89a" + b"\x00" * 64
    with pytest.raises(EnrolmentDecodeError, match="PNG"):
        EnrolmentRecord.from_bytes(_dumps(raw))
    raw = _cbor(make_record())
    raw["fingers"][1]["tpl"] = b"ANSI" + raw["fingers"][1]["tpl"][4:]
    with pytest.raises(EnrolmentDecodeError, match="19794-2"):
        EnrolmentRecord.from_bytes(_dumps(raw))
    raw = _cbor(make_record())
    raw["fingers"][0]["q"]["s"] = 101
    with pytest.raises(EnrolmentDecodeError, match="0-100"):
        EnrolmentRecord.from_bytes(_dumps(raw))
    raw = _cbor(make_record())
    raw["fingers"][0]["fingers"] = raw["fingers"][0]["pos"]
    with pytest.raises(EnrolmentDecodeError, match="unknown field"):
        EnrolmentRecord.from_bytes(_dumps(raw))


def test_unsupported_schema_version_has_its_own_error() -> None:
    raw = _cbor(_exception_only_record())
    raw["v"] = 2
    with pytest.raises(UnsupportedSchemaVersionError) as info:
        EnrolmentRecord.from_bytes(_dumps(raw))
    assert info.value.version == 2


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b + b"\x00", id="trailing-byte"),
        pytest.param(lambda b: b[:-1], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: cbor2.dumps(cbor2.CBORTag(55799, cbor2.loads(b))), id="tagged"),
        pytest.param(
            lambda b: cbor2.dumps(dict(reversed(cbor2.loads(b).items()))), id="unsorted-keys"
        ),
        pytest.param(lambda b: cbor2.dumps([1, 2, 3]), id="not-a-map"),
    ],
)
def test_non_canonical_or_malformed_bytes_are_rejected(mangle: Callable[[bytes], bytes]) -> None:
    record = _exception_only_record(
        documents=frozenset({DocumentKind.PHOTO, DocumentKind.PROOF_OF_ADDRESS})
    )
    data = mangle(record.to_bytes())
    assert data != record.to_bytes()
    with pytest.raises(EnrolmentDecodeError):
        EnrolmentRecord.from_bytes(data)


def test_duplicate_map_keys_are_rejected() -> None:
    good = _exception_only_record().to_bytes()
    # A map of 11 entries whose last key repeats "agent": count byte 0xaa -> 0xab, append.
    assert good[0] == 0xAA
    forged = bytes([0xAB]) + good[1:] + cbor2.dumps("agent") + cbor2.dumps("mallory")
    with pytest.raises(EnrolmentDecodeError):
        EnrolmentRecord.from_bytes(forged)


def test_oversized_input_is_rejected_before_parsing() -> None:
    with pytest.raises(EnrolmentDecodeError, match="at most"):
        EnrolmentRecord.from_bytes(b"\xa0" * (4 * 1024 * 1024 + 1))


@settings(max_examples=300, deadline=None, database=None)
@given(position=st.integers(0, 200), flip=st.integers(0, 255))
def test_any_single_byte_change_decodes_to_a_valid_record_or_a_decode_error(
    position: int, flip: int
) -> None:
    data = bytearray(_exception_only_record().to_bytes())
    data[position % len(data)] ^= flip or 1
    try:
        decoded = EnrolmentRecord.from_bytes(bytes(data))
    except EnrolmentDecodeError:
        return
    # The mutation happened to produce another valid record: it must be a faithful decoding.
    assert decoded.to_bytes() == bytes(data)


# --- construction validates -----------------------------------------------------------------


def test_constructor_rejects_bad_values_naming_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"started_at": datetime(2026, 5, 4, 10, 0)}, "started_at"),
        (
            {"started_at": datetime(2026, 5, 4, 12, 0, tzinfo=timezone(timedelta(hours=2)))},
            "started_at",
        ),
        ({"completed_at": datetime(2026, 5, 4, 9, 0, tzinfo=UTC)}, "completed_at"),
        ({"enrolment_id": "not-a-uuid"}, "enrolment_id"),
        ({"prerequest_number": "a1b2c3d4e5"}, "prerequest_number"),
        ({"device_id": "dr-91228-1"}, "device_id"),
        ({"agent_id": "agent dupont"}, "agent_id"),
        ({"reason": "renewal"}, "reason"),
        ({"tax_stamp_number": "1234"}, "tax_stamp_number"),
        ({"fingers": ()}, "fingers"),
    ]
    for overrides, field in cases:
        with pytest.raises(InvalidEnrolmentError) as info:
            _exception_only_record(**overrides)
        assert info.value.field == field, overrides


def test_finger_must_be_a_capture_or_an_exception() -> None:
    rng = random.Random(5)
    template, png = iso_template(rng), fingerprint_png(rng)
    with pytest.raises(InvalidEnrolmentError, match="needs template"):
        FingerRecord(position=FingerPosition.LEFT_INDEX, template=template)
    with pytest.raises(InvalidEnrolmentError, match="excludes"):
        FingerRecord(
            position=FingerPosition.LEFT_INDEX,
            template=template,
            quality=FingerQuality(score=50),
            image_png=png,
            exception=FingerException.AMPUTATED,
        )
    with pytest.raises(InvalidEnrolmentError, match="known FingerPosition"):
        FingerRecord(position=FingerPosition.UNKNOWN, exception=FingerException.AMPUTATED)
    same = FingerRecord(position=FingerPosition.LEFT_INDEX, exception=FingerException.AMPUTATED)
    with pytest.raises(InvalidEnrolmentError, match="twice"):
        _exception_only_record(fingers=(same, same))


def test_quality_measures_are_validated() -> None:
    with pytest.raises(InvalidEnrolmentError):
        FingerQuality(score=50, measures={"Bad Name": 1.0})
    with pytest.raises(InvalidEnrolmentError):
        FingerQuality(score=50, measures={"contrast": float("nan")})
    quality = FingerQuality(score=50, measures={"b": 1, "a": 0.5})
    assert list(quality.measures) == ["a", "b"]
    assert quality.measures["b"] == 1.0


def test_tax_stamp_rule_is_exposed() -> None:
    assert RequestReason.LOSS.requires_tax_stamp
    assert RequestReason.THEFT.requires_tax_stamp
    assert not RequestReason.RENEWAL.requires_tax_stamp


def test_sample_record_is_realistic() -> None:
    record = sample_record(random.Random(7))
    assert len(record.captured_fingers) == 2
    assert all(100 < len(f.template or b"") < 400 for f in record.fingers)
    assert 100_000 < len(record.to_bytes()) < 400_000
