"""ISO/IEC 19794-2:2005 and ANSI/INCITS 378-2004 records: reference examples and round trips."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.biometrics.iso19794 import (
    COMMON_DPI,
    ExtendedDataBlock,
    RecordFormat,
    TemplateFormatError,
    decode_template,
    dpi_to_ppcm,
    encode_ansi378_2004,
    encode_iso19794_2,
    ppcm_to_dpi,
)
from edge.biometrics.types import FingerPosition, FingerTemplate, Minutia, MinutiaKind

ISO_STEP = 2 * math.pi / 256
ANSI_STEP = 2 * math.pi / 180


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


# --- the standards' examples --------------------------------------------------------------


def test_iso_example_header(iso_example: bytes) -> None:
    record = decode_template(iso_example)
    assert record.format is RecordFormat.ISO_19794_2_2005
    assert (record.length_field, record.length, len(iso_example)) == (340, 341, 341)
    assert (record.width, record.height) == (512, 512)
    assert (record.x_resolution, record.y_resolution) == (197, 197)
    assert record.capture_equipment_id == 0xB5
    assert record.capture_equipment_compliance == 0
    assert record.view_numbers == (0, 0)


def test_iso_example_views(iso_example: bytes) -> None:
    first, second = decode_template(iso_example).views
    assert first.position is FingerPosition.LEFT_INDEX
    assert (first.quality, first.impression, len(first.minutiae)) == (90, 0, 27)
    assert first.dpi == 500.0
    assert first.minutiae[0] == Minutia(
        x=100, y=14, angle=80 * ISO_STEP, kind=MinutiaKind.ENDING, quality=90
    )
    assert math.degrees(first.minutiae[0].angle) == pytest.approx(112.5)
    assert first.minutiae[-1] == Minutia(
        x=0x7E, y=0x73, angle=0x7A * ISO_STEP, kind=MinutiaKind.BIFURCATION, quality=30
    )
    assert second.position is FingerPosition.RIGHT_INDEX
    assert (second.quality, len(second.minutiae)) == (70, 22)
    assert second.minutiae[0] == Minutia(x=40, y=93, angle=0.0, kind=MinutiaKind.ENDING, quality=90)


def test_iso_example_extended_data(iso_example: bytes) -> None:
    record = decode_template(iso_example)
    assert record.extended_data[0] == ()
    # Ridge count block: extraction method 1, then (minutia, minutia, count) triples.
    assert record.extended_data[1] == (
        ExtendedDataBlock(type_id=1, data=bytes([1, 1, 20, 12, 5, 7, 5])),
    )


def test_iso_example_reencodes_byte_exact_but_the_length(iso_example: bytes) -> None:
    expected = iso_example[:8] + struct.pack(">I", 341) + iso_example[12:]
    assert decode_template(iso_example).to_bytes() == expected


def test_iso_example_length_quirk_refused_when_strict(iso_example: bytes) -> None:
    with pytest.raises(TemplateFormatError, match="340") as caught:
        decode_template(iso_example, strict=True)
    assert caught.value.field == "record length"
    assert caught.value.offset == 8


def test_ansi_example(ansi_example: bytes) -> None:
    record = decode_template(ansi_example)
    assert record.format is RecordFormat.ANSI_378_2004
    assert (record.length_field, record.length) == (343, 343)
    assert (record.product_owner, record.product_type) == (0x42, 0x11)
    assert (record.width, record.height, record.x_resolution) == (512, 512, 197)
    first, second = record.views
    assert (first.position, len(first.minutiae), second.position, len(second.minutiae)) == (
        FingerPosition.LEFT_INDEX,
        27,
        FingerPosition.RIGHT_INDEX,
        22,
    )
    assert first.minutiae[0] == Minutia(
        x=100, y=14, angle=56 * ANSI_STEP, kind=MinutiaKind.ENDING, quality=90
    )
    assert math.degrees(first.minutiae[0].angle) == pytest.approx(112.0)


def test_ansi_example_reencodes_byte_exact(ansi_example: bytes) -> None:
    assert decode_template(ansi_example).to_bytes() == ansi_example


def test_the_two_examples_hold_the_same_minutiae(iso_example: bytes, ansi_example: bytes) -> None:
    iso, ansi = decode_template(iso_example), decode_template(ansi_example)
    assert iso.extended_data == ansi.extended_data
    for iso_view, ansi_view in zip(iso.views, ansi.views, strict=True):
        assert len(iso_view.minutiae) == len(ansi_view.minutiae)
        for a, b in zip(iso_view.minutiae, ansi_view.minutiae, strict=True):
            assert (a.x, a.y, a.kind, a.quality) == (b.x, b.y, b.kind, b.quality)
            # The examples quantised one angle each way: within one ANSI step of each other.
            assert _angle_gap(a.angle, b.angle) <= ANSI_STEP + 1e-9


def test_ansi_to_iso_conversion_keeps_everything_but_angle_units(ansi_example: bytes) -> None:
    converted = decode_template(decode_template(ansi_example).to_iso())
    original = decode_template(ansi_example)
    assert converted.format is RecordFormat.ISO_19794_2_2005
    for a_view, c_view in zip(original.views, converted.views, strict=True):
        for a, c in zip(a_view.minutiae, c_view.minutiae, strict=True):
            assert (a.x, a.y, a.kind) == (c.x, c.y, c.kind)
            assert _angle_gap(a.angle, c.angle) <= ISO_STEP / 2 + 1e-9


def test_forced_format(iso_example: bytes) -> None:
    assert decode_template(iso_example, format=RecordFormat.ISO_19794_2_2005).views
    with pytest.raises(TemplateFormatError):
        decode_template(iso_example, format=RecordFormat.ANSI_378_2004)


# --- round trips --------------------------------------------------------------------------


def _template(**overrides: object) -> FingerTemplate:
    fields: dict[str, object] = {
        "width": 388,
        "height": 374,
        "dpi": 500.0,
        "minutiae": (
            Minutia(x=10, y=20, angle=3 * ISO_STEP, kind=MinutiaKind.ENDING, quality=80),
            Minutia(x=387, y=373, angle=255 * ISO_STEP, kind=MinutiaKind.BIFURCATION, quality=5),
            Minutia(x=0, y=0, angle=0.0, kind=MinutiaKind.OTHER, quality=0),
        ),
        "position": FingerPosition.RIGHT_THUMB,
        "quality": 66,
        "impression": 0,
    }
    fields.update(overrides)
    return FingerTemplate(**fields)  # type: ignore[arg-type]


def test_written_header_layout() -> None:
    data = encode_iso19794_2([_template()], capture_equipment_id=0x123)
    assert data[:8] == b"FMR\x00 20\x00"
    assert struct.unpack(">I", data[8:12])[0] == len(data) == 24 + 4 + 3 * 6 + 2
    assert struct.unpack(">HHHHHBB", data[12:24]) == (0x123, 388, 374, 197, 197, 1, 0)
    assert data[24:28] == bytes([1, 0, 66, 3])
    # First minutia: type 01 in the top bits of x, angle 3 steps, quality 80.
    assert data[28:34] == struct.pack(">HHBB", 0x4000 | 10, 20, 3, 80)


@pytest.mark.parametrize("dpi", COMMON_DPI)
def test_common_resolutions_survive(dpi: float) -> None:
    assert ppcm_to_dpi(dpi_to_ppcm(dpi)) == dpi


@given(st.floats(100.0, 5000.0))
def test_any_resolution_comes_back_within_a_step(dpi: float) -> None:
    back = ppcm_to_dpi(dpi_to_ppcm(dpi))
    assert abs(back - dpi) <= 2.54
    assert dpi_to_ppcm(back) == dpi_to_ppcm(dpi)


def test_template_round_trip_is_exact_on_the_angle_grid() -> None:
    views = [_template(), _template(position=FingerPosition.LEFT_LITTLE, quality=100)]
    record = decode_template(encode_iso19794_2(views))
    assert record.views == tuple(views)


def test_view_numbers_count_views_of_the_same_finger() -> None:
    views = [_template(), _template(), _template(position=FingerPosition.LEFT_THUMB)]
    assert decode_template(encode_iso19794_2(views)).view_numbers == (0, 1, 0)


def test_ansi_long_length_form() -> None:
    many = tuple(
        Minutia(x=i, y=i, angle=0.0, kind=MinutiaKind.ENDING, quality=50) for i in range(255)
    )
    # 43 * (4 + 1530 + 2) > 65,535 bytes; at most 16 views of one finger (4-bit number).
    views = [_template(minutiae=many, position=FingerPosition(i % 11)) for i in range(43)]
    data = encode_ansi378_2004(views)
    assert data[8:10] == b"\x00\x00"
    assert struct.unpack(">I", data[10:14])[0] == len(data) > 0xFFFF
    record = decode_template(data)
    assert record.format is RecordFormat.ANSI_378_2004
    assert record.views == tuple(views)
    assert record.to_bytes() == data


minutiae_strategy = st.builds(
    Minutia,
    x=st.integers(0, 0x3FFF),
    y=st.integers(0, 0x3FFF),
    angle=st.floats(-10.0, 10.0, allow_nan=False),
    kind=st.sampled_from(MinutiaKind),
    quality=st.integers(0, 100),
)
views_strategy = st.lists(
    st.builds(
        FingerTemplate,
        width=st.just(300),
        height=st.just(400),
        dpi=st.just(569.0),
        minutiae=st.lists(minutiae_strategy, max_size=30).map(tuple),
        position=st.sampled_from(FingerPosition),
        quality=st.integers(0, 100),
        impression=st.sampled_from([0, 1, 2, 3, 8]),
    ),
    min_size=1,
    max_size=4,
)


@given(views=views_strategy, ansi=st.booleans())
def test_round_trip_quantises_angles_only(views: list[FingerTemplate], ansi: bool) -> None:
    data = encode_ansi378_2004(views) if ansi else encode_iso19794_2(views)
    record = decode_template(data)
    assert record.format is (RecordFormat.ANSI_378_2004 if ansi else RecordFormat.ISO_19794_2_2005)
    assert record.to_bytes() == data
    step = ANSI_STEP if ansi else ISO_STEP
    for original, decoded in zip(views, record.views, strict=True):
        assert (decoded.position, decoded.quality, decoded.impression, decoded.dpi) == (
            original.position,
            original.quality,
            original.impression,
            original.dpi,
        )
        for a, b in zip(original.minutiae, decoded.minutiae, strict=True):
            assert (a.x, a.y, a.kind, a.quality) == (b.x, b.y, b.kind, b.quality)
            assert 0.0 <= b.angle < 2 * math.pi
            assert _angle_gap(a.angle, b.angle) <= step / 2 + 1e-9
    # Once quantised, a second trip changes nothing.
    assert decode_template(record.to_bytes()).views == record.views


def test_a_record_without_views() -> None:
    data = encode_iso19794_2([], image_size=(100, 120), resolution_ppcm=(197, 197))
    assert len(data) == 24
    record = decode_template(data)
    assert (record.views, record.width, record.height) == ((), 100, 120)
    assert record.to_bytes() == data


def test_ansi_long_length_form_kept_for_a_small_record() -> None:
    data = encode_ansi378_2004([_template()], long_length=True)
    assert data[8:10] == b"\x00\x00"
    record = decode_template(data)
    assert record.long_length
    assert record.to_bytes() == data


def test_extended_data_is_written_back() -> None:
    blocks = ((ExtendedDataBlock(0x0101, b"vendor"), ExtendedDataBlock(2, b"")),)
    data = encode_iso19794_2([_template()], extended_data=blocks)
    assert decode_template(data).extended_data == blocks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"minutiae": (Minutia(x=0x4000, y=0, angle=0.0, kind=MinutiaKind.ENDING),)}, "x must"),
        ({"minutiae": (Minutia(x=0, y=-1, angle=0.0, kind=MinutiaKind.ENDING),)}, "y must"),
        ({"minutiae": (Minutia(x=0, y=0, angle=math.nan, kind=MinutiaKind.ENDING),)}, "finite"),
        ({"impression": 16}, "impression type"),
        ({"quality": 101}, "finger quality"),
        ({"dpi": 0.0}, "positive number of dpi"),
        (
            {
                "minutiae": tuple(
                    Minutia(x=0, y=0, angle=0.0, kind=MinutiaKind.ENDING) for _ in range(256)
                )
            },
            "at most 255",
        ),
    ],
)
def test_writer_refuses_what_the_format_cannot_hold(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_iso19794_2([_template(**change)])


def test_writer_refuses_what_a_reader_could_not_use() -> None:
    with pytest.raises(ValueError, match="without finger views"):
        encode_iso19794_2([])
    with pytest.raises(ValueError, match="resolution"):
        encode_iso19794_2([_template(dpi=0.5)])


def test_writer_refuses_a_17th_view_of_one_finger() -> None:
    with pytest.raises(ValueError, match="view number"):
        encode_iso19794_2([_template()] * 17)


def test_writer_refuses_views_of_different_images() -> None:
    with pytest.raises(ValueError, match="image size"):
        encode_iso19794_2([_template(), _template(width=100)])
    with pytest.raises(ValueError, match="resolution"):
        encode_iso19794_2([_template(), _template(dpi=1000.0)])
