"""Identifiers shared by the DR device and central: parse, normalise, check, and signed leases.

- Pre-request number: 10 characters ``[A-Z0-9]`` issued by the national pre-request service.
- Tax stamp (timbre fiscal electronique): 16 digits.
- Device id: ``dr-<INSEE commune code>-<2-digit station>``, e.g. ``dr-91228-01``.
- CNI request number: issued by central only. Layout (docs/identifiers.md)::

      SSSSSSSSSS CC      12 characters [0-9A-Z], printed as XXXX-XXXX-XXXX
      |          +-- ISO/IEC 7064 MOD 1271-36 check characters over the 10 serial characters
      +-- serial: base 36 of an affine permutation of central's counter (mod 36**10)

  The permutation only keeps consecutive numbers from looking consecutive; it is public and
  is not a secret. Uniqueness comes from the counter, which only ever grows.

User input is normalised the same way for every identifier (upper case, spaces and dashes
dropped) before it is validated. A request number whose check characters do not match is
*mistyped* (:class:`MistypedIdentifierError`), which callers report apart from an unknown number.

Offline numbering: central leases a device a block of counter values, signed with central's
Ed25519 key (:func:`sign_lease` on central, :func:`verify_lease` on the device).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dr_contracts.signed_cbor import load_payload, split_signed

ALPHANUMERIC: Final = string.digits + string.ascii_uppercase

PREREQUEST_LENGTH: Final = 10
STAMP_LENGTH: Final = 16
REQUEST_SERIAL_LENGTH: Final = 10
REQUEST_NUMBER_LENGTH: Final = REQUEST_SERIAL_LENGTH + 2
REQUEST_SERIAL_SPACE: Final = 36**REQUEST_SERIAL_LENGTH

# Affine permutation of the counter: multiplier coprime with 36 so the map is a bijection.
_PERMUTE_MUL: Final = 2_259_630_184_031_291  # ~ golden ratio of the space: spreads neighbours
_PERMUTE_ADD: Final = 1_013_904_223_557
_PERMUTE_INV: Final = pow(_PERMUTE_MUL, -1, REQUEST_SERIAL_SPACE)

_PREREQUEST_RE: Final = re.compile(r"[A-Z0-9]{10}")
_STAMP_RE: Final = re.compile(r"[0-9]{16}")
_REQUEST_RE: Final = re.compile(r"[A-Z0-9]{12}")
# INSEE commune code: department (2 digits, or 2A/2B for Corsica) + 3 digits; overseas
# departments (971..976) fit the same pattern.
_DEVICE_RE: Final = re.compile(r"dr-((?:[0-9]{2}|2A|2B)[0-9]{3})-([0-9]{2})")

LEASE_SIGNATURE_CONTEXT: Final = b"dr-number-lease-v1\x00"


class IdentifierError(ValueError):
    """An identifier that cannot be accepted; carries which kind and the normalised value."""

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}")
        self.kind = kind
        self.value = value
        self.reason = reason


class MalformedIdentifierError(IdentifierError):
    """Wrong length or characters for this kind of identifier."""


class MistypedIdentifierError(IdentifierError):
    """Well formed, but the check characters do not match: a typing error, not an unknown id."""


# --- ISO/IEC 7064 pure systems -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PureSystem:
    """An ISO/IEC 7064 pure check character system (modulus, radix, check characters).

    ``data_alphabet`` gives the value of a data character (its index); check characters are
    drawn from ``alphabet``, which may hold one supplementary character (``X``, ``*``).
    """

    name: str
    modulus: int
    radix: int
    check_count: int
    alphabet: str
    data_alphabet: str

    def compute(self, data: str) -> str:
        """Check characters for ``data`` (ISO/IEC 7064, recursive method)."""
        p = 0
        for char in data:
            value = self.data_alphabet.find(char)
            if value < 0:
                raise MalformedIdentifierError(self.name, data, f"character {char!r} not allowed")
            p = ((p + value) * self.radix) % self.modulus
        # One more multiplication per extra check character: they take the low positions.
        for _ in range(self.check_count - 1):
            p = (p * self.radix) % self.modulus
        # Any value congruent to M + 1 - p works; single check characters take it mod M (so it
        # fits the alphabet), double ones keep M + 1 - p (range 2..M+1, as IBAN's 02..98).
        checksum = self.modulus + 1 - p
        if self.check_count == 1:
            checksum %= self.modulus
        chars = []
        for _ in range(self.check_count):
            checksum, digit = (
                divmod(checksum, self.radix) if self.check_count > 1 else (0, checksum)
            )
            chars.append(self.alphabet[digit])
        return "".join(reversed(chars))

    def is_valid(self, full: str) -> bool:
        """Whether ``full`` (data followed by its check characters) satisfies the system."""
        if len(full) <= self.check_count:
            return False
        try:
            return self.compute(full[: -self.check_count]) == full[-self.check_count :]
        except MalformedIdentifierError:
            return False


MOD_11_2: Final = PureSystem("MOD 11-2", 11, 2, 1, string.digits + "X", string.digits)
MOD_37_2: Final = PureSystem("MOD 37-2", 37, 2, 1, ALPHANUMERIC + "*", ALPHANUMERIC)
MOD_97_10: Final = PureSystem("MOD 97-10", 97, 10, 2, string.digits, string.digits)
MOD_1271_36: Final = PureSystem("MOD 1271-36", 1271, 36, 2, ALPHANUMERIC, ALPHANUMERIC)


# --- normalisation and simple identifiers ---------------------------------------------------


def normalise(text: str) -> str:
    """Upper case, spaces and dashes dropped: how every typed or scanned identifier is read."""
    return "".join(ch for ch in text.upper() if ch not in " -\t")


def parse_prerequest_number(text: str) -> str:
    """Normalised pre-request number, or :class:`MalformedIdentifierError`."""
    value = normalise(text)
    if not _PREREQUEST_RE.fullmatch(value):
        raise MalformedIdentifierError(
            "pre-request number", value, "expected 10 characters A-Z 0-9"
        )
    return value


def parse_stamp_number(text: str) -> str:
    """Normalised tax stamp number (16 digits), or :class:`MalformedIdentifierError`."""
    value = normalise(text)
    if not _STAMP_RE.fullmatch(value):
        raise MalformedIdentifierError("tax stamp number", value, "expected 16 digits")
    return value


@dataclass(frozen=True, slots=True)
class DeviceId:
    """``dr-<INSEE commune>-<station>``."""

    commune: str
    station: int

    def __str__(self) -> str:
        return f"dr-{self.commune}-{self.station:02d}"

    @classmethod
    def parse(cls, text: str) -> DeviceId:
        match = _DEVICE_RE.fullmatch(text.strip())
        if match is None or int(match.group(2)) == 0:
            raise MalformedIdentifierError(
                "device id", text, "expected dr-<INSEE commune code>-<station 01..99>"
            )
        return cls(commune=match.group(1), station=int(match.group(2)))


# --- CNI request numbers --------------------------------------------------------------------


def _to_base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        digits.append(ALPHANUMERIC[digit])
    return "".join(reversed(digits))


def request_number_for(counter: int) -> str:
    """The request number central issues for counter value ``counter`` (0 <= counter)."""
    if not 0 <= counter < REQUEST_SERIAL_SPACE:
        raise ValueError(f"counter {counter} outside the request number space")
    serial = _to_base36((counter * _PERMUTE_MUL + _PERMUTE_ADD) % REQUEST_SERIAL_SPACE, 10)
    return serial + MOD_1271_36.compute(serial)


def parse_request_number(text: str) -> str:
    """Normalised request number.

    Raises :class:`MalformedIdentifierError` or :class:`MistypedIdentifierError`.
    """
    value = normalise(text)
    if not _REQUEST_RE.fullmatch(value):
        raise MalformedIdentifierError("request number", value, "expected 12 characters A-Z 0-9")
    if not MOD_1271_36.is_valid(value):
        raise MistypedIdentifierError("request number", value, "check characters do not match")
    return value


def counter_of_request_number(number: str) -> int:
    """Inverse of :func:`request_number_for` (``number`` already parsed)."""
    serial = int(number[:REQUEST_SERIAL_LENGTH], 36)
    return ((serial - _PERMUTE_ADD) * _PERMUTE_INV) % REQUEST_SERIAL_SPACE


def format_request_number(number: str) -> str:
    """Printed form ``XXXX-XXXX-XXXX`` (dashes are dropped again when it is typed back)."""
    return "-".join(number[i : i + 4] for i in range(0, len(number), 4))


# --- signed leases of request numbers ------------------------------------------------------


class LeaseError(ValueError):
    """A lease that the device must not use."""


class LeaseMalformedError(LeaseError):
    """Not a lease (bad encoding, missing or ill-typed fields)."""


class LeaseForgedError(LeaseError):
    """The signature does not verify with central's key."""


class LeaseNotForDeviceError(LeaseError):
    """Signed by central, but leased to another device."""

    def __init__(self, device_id: str, expected: str) -> None:
        super().__init__(f"lease is for {device_id}, not {expected}")
        self.device_id = device_id
        self.expected = expected


@dataclass(frozen=True, slots=True)
class NumberLease:
    """A block of ``count`` counter values from ``first``, leased to one device until expiry."""

    lease_id: str
    device_id: str
    first: int
    count: int
    issued_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        if self.count <= 0 or self.first < 0 or self.first + self.count > REQUEST_SERIAL_SPACE:
            raise ValueError(f"bad lease range first={self.first} count={self.count}")
        if self.issued_at.tzinfo is None or self.expires_at.tzinfo is None:
            raise ValueError("lease times must be timezone-aware")

    def numbers(self) -> Iterator[str]:
        """The request numbers of the lease, in order."""
        for counter in range(self.first, self.first + self.count):
            yield request_number_for(counter)

    def contains(self, number: str) -> bool:
        """Whether the (parsed) request ``number`` belongs to this lease."""
        return self.first <= counter_of_request_number(number) < self.first + self.count

    def payload(self) -> bytes:
        """Canonical CBOR encoding that the signature covers."""
        return cbor2.dumps(
            {
                "v": 1,
                "lease_id": self.lease_id,
                "device_id": self.device_id,
                "first": self.first,
                "count": self.count,
                "issued_at": self.issued_at.astimezone(UTC).isoformat(),
                "expires_at": self.expires_at.astimezone(UTC).isoformat(),
            },
            canonical=True,
        )


def sign_lease(lease: NumberLease, key: Ed25519PrivateKey) -> bytes:
    """Signed lease as sent to the device: CBOR ``[payload, signature]``."""
    payload = lease.payload()
    return cbor2.dumps([payload, key.sign(LEASE_SIGNATURE_CONTEXT + payload)])


def verify_lease(
    data: bytes, *, central_public_key: Ed25519PublicKey, device_id: str
) -> NumberLease:
    """Check a signed lease (on the device, offline) and return it.

    Raises :class:`LeaseMalformedError`, :class:`LeaseForgedError` or
    :class:`LeaseNotForDeviceError`.
    Expiry is the caller's to check against its clock (``lease.expires_at``).
    """
    payload, signature = _split_signed(data)
    try:
        central_public_key.verify(signature, LEASE_SIGNATURE_CONTEXT + payload)
    except InvalidSignature as exc:
        raise LeaseForgedError("lease signature does not verify with central's key") from exc
    lease = _lease_from_payload(payload)
    if lease.device_id != device_id:
        raise LeaseNotForDeviceError(lease.device_id, device_id)
    return lease


def _split_signed(data: bytes) -> tuple[bytes, bytes]:
    return split_signed(data, what="a signed lease", error=LeaseMalformedError)


def _lease_from_payload(payload: bytes) -> NumberLease:
    fields = load_payload(payload, noun="lease", version=1, error=LeaseMalformedError)
    try:
        return NumberLease(
            lease_id=str(fields["lease_id"]),
            device_id=str(fields["device_id"]),
            first=int(fields["first"]),
            count=int(fields["count"]),
            issued_at=datetime.fromisoformat(fields["issued_at"]),
            expires_at=datetime.fromisoformat(fields["expires_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LeaseMalformedError(f"bad lease fields: {exc}") from exc
