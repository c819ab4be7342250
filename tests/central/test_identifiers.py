"""Identifiers: ISO/IEC 7064 check characters (published vectors, an independent oracle,
error-detection properties), request numbers, normalisation, device ids, signed leases."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from stdnum.iso7064 import mod_11_2, mod_37_2, mod_97_10

from dr_contracts.identifiers import (
    MOD_11_2,
    MOD_37_2,
    MOD_97_10,
    MOD_1271_36,
    DeviceId,
    LeaseForgedError,
    LeaseMalformedError,
    LeaseNotForDeviceError,
    MalformedIdentifierError,
    MistypedIdentifierError,
    NumberLease,
    counter_of_request_number,
    format_request_number,
    parse_prerequest_number,
    parse_request_number,
    parse_stamp_number,
    request_number_for,
    sign_lease,
    verify_lease,
)

ALNUM = string.digits + string.ascii_uppercase


@pytest.mark.parametrize(
    ("system", "data", "check"),
    [
        # Examples of ISO/IEC 7064 (annex) and of standards built on it.
        (MOD_1271_36, "ISO79", "3W"),
        (MOD_97_10, "794", "44"),
        (MOD_11_2, "079", "X"),
        (MOD_11_2, "000000021825009", "7"),  # ORCID 0000-0002-1825-0097 (ISO 7064 MOD 11-2)
        (MOD_37_2, "G123498654321", "H"),
    ],
)
def test_published_vectors(system: object, data: str, check: str) -> None:
    assert system.compute(data) == check  # type: ignore[attr-defined]
    assert system.is_valid(data + check)  # type: ignore[attr-defined]


@given(st.text(alphabet=string.digits, min_size=1, max_size=30))
def test_numeric_systems_agree_with_python_stdnum(data: str) -> None:
    assert MOD_11_2.compute(data) == mod_11_2.calc_check_digit(data)
    assert MOD_97_10.compute(data) == mod_97_10.calc_check_digits(data)


@given(st.text(alphabet=ALNUM, min_size=1, max_size=30))
def test_mod_37_2_agrees_with_python_stdnum(data: str) -> None:
    assert MOD_37_2.compute(data) == mod_37_2.calc_check_digit(data)


@given(st.text(alphabet=ALNUM, min_size=10, max_size=10), st.data())
def test_mod_1271_36_detects_every_single_substitution(serial: str, data: st.DataObject) -> None:
    full = serial + MOD_1271_36.compute(serial)
    i = data.draw(st.integers(0, len(full) - 1))
    replacement = data.draw(st.sampled_from([c for c in ALNUM if c != full[i]]))
    assert not MOD_1271_36.is_valid(full[:i] + replacement + full[i + 1 :])


@given(st.text(alphabet=ALNUM, min_size=10, max_size=10), st.data())
def test_mod_1271_36_detects_every_adjacent_transposition(serial: str, data: st.DataObject) -> None:
    full = serial + MOD_1271_36.compute(serial)
    i = data.draw(st.integers(0, len(full) - 2))
    if full[i] == full[i + 1]:
        return
    swapped = full[:i] + full[i + 1] + full[i] + full[i + 2 :]
    assert not MOD_1271_36.is_valid(swapped)


def test_request_numbers_are_unique_and_invertible() -> None:
    numbers = [request_number_for(c) for c in range(5000)]
    assert len(set(numbers)) == len(numbers)
    for counter in (0, 1, 4999, 36**10 - 1):
        number = request_number_for(counter)
        assert len(number) == 12
        assert parse_request_number(number) == number
        assert counter_of_request_number(number) == counter
    # consecutive counters do not give look-alike numbers
    assert numbers[0][:6] != numbers[1][:6]


def test_request_number_typed_back_from_print() -> None:
    number = request_number_for(42)
    printed = format_request_number(number)
    assert printed.count("-") == 2
    assert parse_request_number(f" {printed.lower()} ") == number


def test_mistyped_is_told_apart_from_malformed() -> None:
    number = request_number_for(7)
    wrong = number[:3] + ("A" if number[3] != "A" else "B") + number[4:]
    with pytest.raises(MistypedIdentifierError):
        parse_request_number(wrong)
    with pytest.raises(MalformedIdentifierError):
        parse_request_number(number[:-1])
    with pytest.raises(MalformedIdentifierError):
        parse_request_number(number[:-1] + "é")


def test_prerequest_and_stamp_normalisation() -> None:
    assert parse_prerequest_number(" ab12-cd34 56 ") == "AB12CD3456"
    with pytest.raises(MalformedIdentifierError):
        parse_prerequest_number("AB12CD345")
    assert parse_stamp_number("1234 5678 9012 3456") == "1234567890123456"
    with pytest.raises(MalformedIdentifierError):
        parse_stamp_number("1234567890123A56")


@pytest.mark.parametrize("text", ["dr-91228-01", "dr-2A004-12", "dr-97302-03"])
def test_device_ids(text: str) -> None:
    assert str(DeviceId.parse(text)) == text


@pytest.mark.parametrize("text", ["dr-9122-01", "dr-91228-1", "dr-91228-00", "DR-91228-01", ""])
def test_bad_device_ids(text: str) -> None:
    with pytest.raises(MalformedIdentifierError):
        DeviceId.parse(text)


def _lease(device_id: str = "dr-91228-01") -> NumberLease:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    return NumberLease("l-1", device_id, 1000, 5, now, now + timedelta(days=30))


def test_signed_lease_round_trip() -> None:
    key = Ed25519PrivateKey.generate()
    lease = verify_lease(
        sign_lease(_lease(), key), central_public_key=key.public_key(), device_id="dr-91228-01"
    )
    assert lease == _lease()
    numbers = list(lease.numbers())
    assert numbers == [request_number_for(c) for c in range(1000, 1005)]
    assert all(lease.contains(n) for n in numbers)
    assert not lease.contains(request_number_for(1005))


def test_forged_or_misdirected_leases_are_refused() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = sign_lease(_lease(), other)
    with pytest.raises(LeaseForgedError):
        verify_lease(signed, central_public_key=key.public_key(), device_id="dr-91228-01")
    with pytest.raises(LeaseNotForDeviceError):
        verify_lease(
            sign_lease(_lease("dr-91228-02"), key),
            central_public_key=key.public_key(),
            device_id="dr-91228-01",
        )
    tampered = bytearray(sign_lease(_lease(), key))
    tampered[20] ^= 1
    with pytest.raises((LeaseForgedError, LeaseMalformedError)):
        verify_lease(bytes(tampered), central_public_key=key.public_key(), device_id="dr-91228-01")
    with pytest.raises(LeaseMalformedError):
        verify_lease(b"\xff\x00", central_public_key=key.public_key(), device_id="dr-91228-01")
