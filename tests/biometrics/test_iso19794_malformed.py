"""Malformed minutiae records: always a located TemplateFormatError, never a crash or a hang."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.biometrics.iso19794 import (
    MinutiaeRecord,
    RecordFormat,
    TemplateFormatError,
    decode_template,
)

# Offsets in the ISO example: first view header at 24, its 27 minutiae from 28, the
# extended data length of view 0 at 190, view 1 header at 192.
FIRST_VIEW = 24
FIRST_MINUTIA = 28
VIEW1_HEADER = 192


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _decode_or_format_error(data: bytes) -> MinutiaeRecord | None:
    """Decode, or check that the refusal is a TemplateFormatError that locates the fault."""
    refusal: TemplateFormatError | None = None
    try:
        return decode_template(data)
    except TemplateFormatError as error:
        refusal = error
    assert refusal.field
    assert refusal.offset is None or 0 <= refusal.offset <= len(data)
    return None


def _assert_written_back(record: MinutiaeRecord, data: bytes) -> None:
    """A record that parses is written back byte for byte: the length field corrected and
    zero padding dropped, nothing else."""
    length_at = (
        8 if record.format is RecordFormat.ISO_19794_2_2005 or not record.long_length else 10
    )
    size = 4 if record.format is RecordFormat.ISO_19794_2_2005 or record.long_length else 2
    expected = bytearray(data[: record.length])
    expected[length_at : length_at + size] = record.length.to_bytes(size, "big")
    assert record.to_bytes() == bytes(expected)


def test_every_truncation_is_a_located_error(iso_example: bytes, ansi_example: bytes) -> None:
    for example in (iso_example, ansi_example):
        for size in range(len(example)):
            with pytest.raises(TemplateFormatError) as caught:
                decode_template(example[:size])
            assert caught.value.offset is not None
            assert caught.value.offset <= size


def test_truncated_in_a_minutia_names_it(iso_example: bytes) -> None:
    with pytest.raises(TemplateFormatError, match="truncated") as caught:
        decode_template(iso_example[: FIRST_MINUTIA + 6 * 3 + 2])
    assert caught.value.field == "finger view 0 minutia 3"
    assert caught.value.offset == FIRST_MINUTIA + 6 * 3


def test_wrong_magic(iso_example: bytes) -> None:
    with pytest.raises(TemplateFormatError, match="not a finger minutiae record") as caught:
        decode_template(b"FIR\x00" + iso_example[4:])
    assert (caught.value.field, caught.value.offset) == ("format identifier", 0)


def test_unsupported_version(iso_example: bytes) -> None:
    with pytest.raises(TemplateFormatError, match="unsupported version") as caught:
        decode_template(iso_example[:4] + b"030\x00" + iso_example[8:])
    assert caught.value.offset == 4


def test_minutiae_count_overflow(iso_example: bytes) -> None:
    # 255 minutiae announced where 27 are: the reader runs out of bytes, it does not guess.
    with pytest.raises(TemplateFormatError, match="truncated"):
        decode_template(_patched(iso_example, FIRST_VIEW + 3, b"\xff"))


def test_view_count_overflow(iso_example: bytes) -> None:
    with pytest.raises(TemplateFormatError) as caught:
        decode_template(_patched(iso_example, 22, b"\x09"))
    assert caught.value.field.startswith("finger view 2")


def test_view_count_underflow_leaves_bytes(iso_example: bytes) -> None:
    with pytest.raises(TemplateFormatError, match="unexpected bytes") as caught:
        decode_template(_patched(iso_example, 22, b"\x01"))
    assert caught.value.offset == VIEW1_HEADER


def test_trailing_garbage(ansi_example: bytes) -> None:
    with pytest.raises(TemplateFormatError, match="unexpected bytes") as caught:
        decode_template(ansi_example + b"\x00\x01")
    assert caught.value.offset == len(ansi_example)


def test_zero_padding_after_a_consistent_record(ansi_example: bytes, iso_example: bytes) -> None:
    assert decode_template(ansi_example + bytes(100)).to_bytes() == ansi_example
    # The ISO example's length field is off by one: padding it is not vouched for.
    with pytest.raises(TemplateFormatError, match="unexpected bytes"):
        decode_template(iso_example + bytes(3))


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (23, b"\x01", "header reserved byte"),
        (18, b"\x00\x00", "x resolution"),
        (FIRST_VIEW, b"\x0b", "finger view 0 finger position"),
        (FIRST_VIEW + 2, b"\x65", "finger view 0 quality"),
        (FIRST_MINUTIA, b"\xc0", "finger view 0 minutia 0 type"),
        (FIRST_MINUTIA + 2, b"\x40", "finger view 0 minutia 0 y"),
        (FIRST_MINUTIA + 5, b"\x65", "finger view 0 minutia 0 quality"),
        (8, b"\x00\x00\x00\x10", "record length"),
    ],
)
def test_bad_field_values(iso_example: bytes, offset: int, value: bytes, field: str) -> None:
    with pytest.raises(TemplateFormatError) as caught:
        decode_template(_patched(iso_example, offset, value), format=RecordFormat.ISO_19794_2_2005)
    assert caught.value.field == field


def test_ansi_angle_out_of_range(ansi_example: bytes) -> None:
    first_minutia = 26 + 4
    with pytest.raises(TemplateFormatError, match="angle 180") as caught:
        decode_template(_patched(ansi_example, first_minutia + 4, b"\xb4"))
    assert caught.value.field == "finger view 0 minutia 0 angle"


def test_extended_block_shorter_than_its_header(iso_example: bytes) -> None:
    block_length_at = len(iso_example) - 11 + 2
    with pytest.raises(TemplateFormatError, match="shorter than its own"):
        decode_template(_patched(iso_example, block_length_at, struct.pack(">H", 3)))


def test_extended_block_overrun(iso_example: bytes) -> None:
    block_length_at = len(iso_example) - 11 + 2
    with pytest.raises(TemplateFormatError, match="overruns"):
        decode_template(_patched(iso_example, block_length_at, struct.pack(">H", 200)))


def test_not_bytes() -> None:
    with pytest.raises(TypeError):
        decode_template("FMR")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    record = _decode_or_format_error(data)
    if record is not None:
        _assert_written_back(record, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_behind_the_identifier(data: bytes) -> None:
    record = _decode_or_format_error(b"FMR\x00 20\x00" + data)
    if record is not None:
        _assert_written_back(record, b"FMR\x00 20\x00" + data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_examples(iso_example: bytes, ansi_example: bytes, data: st.DataObject) -> None:
    example = data.draw(st.sampled_from([iso_example, ansi_example]))
    mutated = bytearray(example)
    for _ in range(data.draw(st.integers(1, 4))):
        offset = data.draw(st.integers(0, len(mutated) - 1))
        mutated[offset] = data.draw(st.integers(0, 255))
    record = _decode_or_format_error(bytes(mutated))
    if record is not None:
        _assert_written_back(record, bytes(mutated))
