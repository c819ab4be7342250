"""Finger minutiae records: ISO/IEC 19794-2:2005 and ANSI/INCITS 378-2004, read and written.

Both standards share one layout, big-endian, apart from the record header and the angle unit::

    record header, ISO/IEC 19794-2:2005 (24 bytes)
      0  4  format identifier            "FMR\\0"
      4  4  version                      " 20\\0"
      8  4  record length                whole record, header included
     12  2  capture equipment            4 bits compliance | 12 bits equipment id
     14  2  image width                  pixels
     16  2  image height                 pixels
     18  2  x resolution                 pixels per centimetre
     20  2  y resolution                 pixels per centimetre
     22  1  number of finger views
     23  1  reserved                     0

    record header, ANSI/INCITS 378-2004 (26 bytes, or 30 with the long length form)
      0  8  "FMR\\0", " 20\\0"
      8  2  record length                (0 here means: a 4-byte length follows)
     10  4  CBEFF product identifier     2 bytes owner | 2 bytes type
     then capture equipment ... reserved, as ISO from offset 12

    finger view header (4 bytes)
      finger position (table of positions, 0-10) | view number (4 bits) and impression
      type (4 bits) | finger quality 0-100 | number of minutiae

    minutia (6 bytes)
      2 bits type (01 ending, 10 bifurcation, 00 other) | 14 bits x
      2 bits reserved (0)                               | 14 bits y
      angle: ISO in units of 360/256 degrees, ANSI in units of 2 degrees (0-179),
             counter-clockwise from the x axis (y pointing up)
      quality 0-100

    extended data (per view)
      2 bytes total length of the blocks (0: none), then blocks of
      2 bytes type (1 ridge counts, 2 cores and deltas, >= 0x100 vendor) | 2 bytes block
      length, these 4 bytes included | data

Resolution and angles are the only quantities not stored exactly:

* the resolution is stored in pixels per centimetre: ``round(dpi / 2.54)``. Reading gives back
  a common sensor resolution that maps to the stored value (500 -> 197 -> 500,
  569 -> 224 -> 569, 1000 -> 394 -> 1000), else the nearest whole dpi: any resolution comes
  back within one stored step (2.54 dpi) and stores the same value again;
* angles are quantised to 360/256 degrees (ISO) or 2 degrees (ANSI), rounding to the nearest
  step. A template whose angles are multiples of the step survives a round trip exactly; any
  other angle moves by at most half a step (0.70 degrees for ISO).

Bytes survive a round trip exactly: ``decode_template(data).to_bytes() == data`` for every valid
record, with one tolerated defect: a record length field that disagrees with the structure
(the standard's own example in ISO/IEC 19794-2:2005 annex C.2 declares 340 bytes and holds 341)
is read, kept in :attr:`MinutiaeRecord.length_field`, and written correctly. Zero bytes after
a record whose length field is right (a record kept in a fixed-size buffer) are ignored; any
other byte after the last finger view is an error.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple, TypedDict

from .types import FingerPosition, FingerTemplate, Minutia, MinutiaKind

__all__ = [
    "COMMON_DPI",
    "ExtendedDataBlock",
    "MinutiaeRecord",
    "RecordFormat",
    "TemplateFormatError",
    "ViewSummary",
    "check_template",
    "decode_template",
    "dpi_to_ppcm",
    "encode_ansi378_2004",
    "encode_iso19794_2",
    "ppcm_to_dpi",
]

MAGIC = b"FMR\x00"
VERSION_2005 = b" 20\x00"
ISO_HEADER_SIZE = 24
ANSI_HEADER_SIZE = 26
VIEW_HEADER_SIZE = 4
MINUTIA_SIZE = 6
EXTENDED_LENGTH_SIZE = 2
EXTENDED_BLOCK_HEADER_SIZE = 4

MAX_COORDINATE = 0x3FFF  # 14 bits
MAX_VIEWS = 255
MAX_MINUTIAE = 255
MAX_QUALITY = 100
# ISO angle unit: 360/256 degrees; ANSI: 2 degrees (values 0-179).
ISO_ANGLE_STEPS = 256
ANSI_ANGLE_STEPS = 180
CM_PER_INCH = 2.54
# Resolutions of common sensors and data sets (FVC2002 db2 is 569 dpi, R30x modules 508), each
# a distinct number of pixels per centimetre; see ppcm_to_dpi.
COMMON_DPI: tuple[float, ...] = (
    250.0,
    300.0,
    333.0,
    400.0,
    500.0,
    508.0,
    569.0,
    600.0,
    700.0,
    750.0,
    800.0,
    1000.0,
    1200.0,
)

# From the capture equipment field to the reserved byte: the header part both formats share.
_HEADER_TAIL = struct.Struct(">HHHHHBB")
_VIEW_HEADER = struct.Struct(">BBBB")
_MINUTIA = struct.Struct(">HHBB")
_MINUTIA_KINDS: Final = tuple(MinutiaKind(value) for value in range(3))  # by the 2-bit code
_TWO_PI: Final = 2.0 * math.pi
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class RecordFormat(StrEnum):
    ISO_19794_2_2005 = "ISO/IEC 19794-2:2005"
    ANSI_378_2004 = "ANSI/INCITS 378-2004"


class TemplateFormatError(ValueError):
    """A minutiae record is malformed; says which field, at which byte offset, and why."""

    def __init__(self, message: str, *, field: str, offset: int | None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{field}{where}: {message}")
        self.field = field
        self.offset = offset
        self.reason = message


@dataclass(frozen=True, slots=True)
class ExtendedDataBlock:
    """One extended data block of a finger view, kept as bytes so that it is written back as
    read (type 1: ridge counts, 2: cores and deltas, 0x0100 and above: vendor defined)."""

    type_id: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type_id <= 0xFFFF:
            raise ValueError(f"extended data type must fit 16 bits, got {self.type_id}")
        if len(self.data) > 0xFFFF - EXTENDED_BLOCK_HEADER_SIZE:
            raise ValueError(f"extended data block too long: {len(self.data)} bytes")


@dataclass(frozen=True, slots=True)
class MinutiaeRecord:
    """A decoded finger minutiae record: its views as templates, and every header field."""

    format: RecordFormat
    views: tuple[FingerTemplate, ...]
    view_numbers: tuple[int, ...]
    extended_data: tuple[tuple[ExtendedDataBlock, ...], ...]
    width: int
    height: int
    x_resolution: int  # pixels per centimetre
    y_resolution: int  # pixels per centimetre
    capture_equipment_compliance: int = 0
    capture_equipment_id: int = 0
    length_field: int = 0  # as declared in the record, which may be wrong (see module doc)
    length: int = 0  # as measured from the structure
    product_owner: int = 0  # ANSI CBEFF product identifier; 0 for ISO records
    product_type: int = 0
    long_length: bool = False  # ANSI: the 6-byte length form was used

    def to_bytes(self) -> bytes:
        """Encode the record again, in its own format (byte-exact, length field corrected)."""
        if self.format is RecordFormat.ANSI_378_2004:
            return encode_ansi378_2004(
                self.views,
                product_owner=self.product_owner,
                product_type=self.product_type,
                long_length=self.long_length,
                **self._common_fields(),
            )
        return self.to_iso()

    def to_iso(self) -> bytes:
        """Encode the record as ISO/IEC 19794-2:2005 (an ANSI record is converted: its angles
        are re-quantised from 2-degree to 360/256-degree steps)."""
        return encode_iso19794_2(self.views, **self._common_fields())

    def _common_fields(self) -> _CommonFields:
        return {
            "view_numbers": self.view_numbers,
            "extended_data": self.extended_data,
            "resolution_ppcm": (self.x_resolution, self.y_resolution),
            "image_size": (self.width, self.height),
            "capture_equipment_id": self.capture_equipment_id,
            "capture_equipment_compliance": self.capture_equipment_compliance,
        }


class _CommonFields(TypedDict):
    """Keyword arguments the two encoders share (what a decoded record passes back)."""

    view_numbers: Sequence[int]
    extended_data: Sequence[Sequence[ExtendedDataBlock]]
    resolution_ppcm: tuple[int, int]
    image_size: tuple[int, int]
    capture_equipment_id: int
    capture_equipment_compliance: int


# --- resolution and angle units -----------------------------------------------------------


def dpi_to_ppcm(dpi: float) -> int:
    """Pixels per centimetre as the record stores them: ``round(dpi / 2.54)``."""
    if not math.isfinite(dpi) or dpi <= 0:
        raise ValueError(f"resolution must be a positive number of dpi, got {dpi!r}")
    return round(dpi / CM_PER_INCH)


def ppcm_to_dpi(ppcm: int) -> float:
    """The resolution in dpi for a stored number of pixels per centimetre.

    About 2.5 whole dpi values share one stored value, so the answer is a choice: a common
    sensor resolution (:data:`COMMON_DPI`) that maps to ``ppcm`` if there is one, else the
    whole number of dpi nearest to ``ppcm * 2.54``. Thus 500, 508, 569 and 1000 dpi survive
    a round trip, and any resolution comes back within 2.54 dpi (one stored step).
    """
    for dpi in COMMON_DPI:
        if dpi_to_ppcm(dpi) == ppcm:
            return dpi
    exact = ppcm * CM_PER_INCH
    whole = float(round(exact))
    return whole if whole > 0 and round(whole / CM_PER_INCH) == ppcm else exact


def _angle_to_steps(angle: float, steps: int) -> int:
    if not math.isfinite(angle):
        raise ValueError(f"minutia angle must be finite, got {angle!r}")
    return round(angle * steps / (2.0 * math.pi)) % steps


# --- encoding -----------------------------------------------------------------------------


def encode_iso19794_2(
    views: Sequence[FingerTemplate],
    *,
    view_numbers: Sequence[int] | None = None,
    extended_data: Sequence[Sequence[ExtendedDataBlock]] | None = None,
    resolution_ppcm: tuple[int, int] | None = None,
    image_size: tuple[int, int] | None = None,
    capture_equipment_id: int = 0,
    capture_equipment_compliance: int = 0,
) -> bytes:
    """Write an ISO/IEC 19794-2:2005 finger minutiae record.

    Parameters
    ----------
    views : sequence of FingerTemplate
        One template per finger view, all of the same image (size and resolution are
        record-wide in the format).
    view_numbers : sequence of int, optional
        View number of each view (0-15). By default, views of the same finger position are
        numbered 0, 1, ... in order.
    extended_data : sequence of sequence of ExtendedDataBlock, optional
        Extended data blocks of each view (none by default).
    resolution_ppcm : (int, int), optional
        (x, y) resolution in pixels per centimetre; by default ``round(dpi / 2.54)``.
    image_size : (int, int), optional
        (width, height); by default the views' own.
    capture_equipment_id, capture_equipment_compliance : int
        12-bit equipment identifier and 4-bit compliance flags.

    Returns
    -------
    record : bytes

    Raises
    ------
    ValueError
        A field does not fit the format (coordinate over 14 bits, more than 255 minutiae,
        views of different image sizes, ...).
    """
    body = _encode_views(
        views,
        view_numbers=view_numbers,
        extended_data=extended_data,
        angle_steps=ISO_ANGLE_STEPS,
    )
    header_tail = _encode_header_tail(
        views,
        resolution_ppcm=resolution_ppcm,
        image_size=image_size,
        capture_equipment_id=capture_equipment_id,
        capture_equipment_compliance=capture_equipment_compliance,
    )
    length = len(MAGIC) + len(VERSION_2005) + _U32.size + len(header_tail) + len(body)
    if length > 0xFFFFFFFF:
        raise ValueError(f"record of {length} bytes does not fit the 4-byte length field")
    return MAGIC + VERSION_2005 + _U32.pack(length) + header_tail + body


def encode_ansi378_2004(
    views: Sequence[FingerTemplate],
    *,
    product_owner: int = 0,
    product_type: int = 0,
    view_numbers: Sequence[int] | None = None,
    extended_data: Sequence[Sequence[ExtendedDataBlock]] | None = None,
    resolution_ppcm: tuple[int, int] | None = None,
    image_size: tuple[int, int] | None = None,
    capture_equipment_id: int = 0,
    capture_equipment_compliance: int = 0,
    long_length: bool = False,
) -> bytes:
    """Write an ANSI/INCITS 378-2004 finger minutiae record (angles in 2-degree steps).

    Same parameters as :func:`encode_iso19794_2`, plus the CBEFF product identifier
    (``product_owner``, ``product_type``, 16 bits each). The 2-byte length form is used up to
    65,535 bytes, the 6-byte form above or when ``long_length`` asks for it.
    """
    for name, value in (("product_owner", product_owner), ("product_type", product_type)):
        _check_range(name, value, 0xFFFF)
    body = _encode_views(
        views,
        view_numbers=view_numbers,
        extended_data=extended_data,
        angle_steps=ANSI_ANGLE_STEPS,
    )
    header_tail = _encode_header_tail(
        views,
        resolution_ppcm=resolution_ppcm,
        image_size=image_size,
        capture_equipment_id=capture_equipment_id,
        capture_equipment_compliance=capture_equipment_compliance,
    )
    product = _U16.pack(product_owner) + _U16.pack(product_type)
    length = (
        len(MAGIC) + len(VERSION_2005) + _U16.size + len(product) + len(header_tail) + len(body)
    )
    if length <= 0xFFFF and not long_length:
        length_bytes = _U16.pack(length)
    else:
        length += 4
        if length > 0xFFFFFFFF:
            raise ValueError(f"record of {length} bytes does not fit the length field")
        length_bytes = _U16.pack(0) + _U32.pack(length)
    return MAGIC + VERSION_2005 + length_bytes + product + header_tail + body


def _check_range(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} must be in 0..{maximum}, got {value}")


def _encode_header_tail(
    views: Sequence[FingerTemplate],
    *,
    resolution_ppcm: tuple[int, int] | None,
    image_size: tuple[int, int] | None,
    capture_equipment_id: int,
    capture_equipment_compliance: int,
) -> bytes:
    """Capture equipment to reserved byte: the part of the header both formats share."""
    _check_range("capture_equipment_id", capture_equipment_id, 0xFFF)
    _check_range("capture_equipment_compliance", capture_equipment_compliance, 0xF)
    if len(views) > MAX_VIEWS:
        raise ValueError(f"a record holds at most {MAX_VIEWS} finger views, got {len(views)}")
    if not views and (image_size is None or resolution_ppcm is None):
        raise ValueError("a record without finger views needs image_size and resolution_ppcm")
    shapes = {(v.width, v.height) for v in views}
    if image_size is None:
        if len(shapes) > 1:
            raise ValueError(f"views must share one image size (record-wide), got {shapes}")
        image_size = shapes.pop()
    if resolution_ppcm is None:
        ppcms = {dpi_to_ppcm(v.dpi) for v in views}
        if len(ppcms) > 1:
            raise ValueError(f"views must share one resolution (record-wide), got {ppcms} px/cm")
        ppcm = ppcms.pop()
        resolution_ppcm = (ppcm, ppcm)
    for name, value in zip(("width", "height"), image_size, strict=True):
        _check_range(f"image {name}", value, 0xFFFF)
    for name, value in zip(("x", "y"), resolution_ppcm, strict=True):
        _check_range(f"{name} resolution (px/cm)", value, 0xFFFF)
        if value == 0:
            raise ValueError(f"{name} resolution rounds to 0 px/cm: a reader could not use it")
    equipment = capture_equipment_compliance << 12 | capture_equipment_id
    return _HEADER_TAIL.pack(equipment, *image_size, *resolution_ppcm, len(views), 0)


def _encode_views(
    views: Sequence[FingerTemplate],
    *,
    view_numbers: Sequence[int] | None,
    extended_data: Sequence[Sequence[ExtendedDataBlock]] | None,
    angle_steps: int,
) -> bytes:
    if view_numbers is None:
        seen: Counter[int] = Counter()
        numbers = []
        for view in views:
            numbers.append(seen[view.position])
            seen[view.position] += 1
        view_numbers = numbers
    if extended_data is None:
        extended_data = [()] * len(views)
    if not len(view_numbers) == len(extended_data) == len(views):
        raise ValueError(
            f"{len(views)} views but {len(view_numbers)} view numbers and "
            f"{len(extended_data)} extended data entries"
        )
    out = bytearray()
    for index, (view, number, blocks) in enumerate(
        zip(views, view_numbers, extended_data, strict=True)
    ):
        where = f"view {index}"
        _check_range(f"{where}: view number", number, 0xF)
        _check_range(f"{where}: impression type", view.impression, 0xF)
        _check_range(f"{where}: finger quality", view.quality, MAX_QUALITY)
        _check_range(f"{where}: finger position", int(view.position), 0xFF)
        if len(view.minutiae) > MAX_MINUTIAE:
            raise ValueError(f"{where}: at most {MAX_MINUTIAE} minutiae, got {len(view.minutiae)}")
        out += _VIEW_HEADER.pack(
            int(view.position), number << 4 | view.impression, view.quality, len(view.minutiae)
        )
        for m_index, minutia in enumerate(view.minutiae):
            out += _encode_minutia(minutia, angle_steps=angle_steps, where=f"{where}, {m_index}")
        extended = b"".join(
            _U16.pack(block.type_id)
            + _U16.pack(len(block.data) + EXTENDED_BLOCK_HEADER_SIZE)
            + block.data
            for block in blocks
        )
        if len(extended) > 0xFFFF:
            raise ValueError(f"{where}: extended data of {len(extended)} bytes over 65,535")
        out += _U16.pack(len(extended)) + extended
    return bytes(out)


def _encode_minutia(minutia: Minutia, *, angle_steps: int, where: str) -> bytes:
    _check_range(f"minutia {where}: x", minutia.x, MAX_COORDINATE)
    _check_range(f"minutia {where}: y", minutia.y, MAX_COORDINATE)
    _check_range(f"minutia {where}: type", int(minutia.kind), 2)
    angle = _angle_to_steps(minutia.angle, angle_steps)
    return _MINUTIA.pack(int(minutia.kind) << 14 | minutia.x, minutia.y, angle, minutia.quality)


# --- decoding -----------------------------------------------------------------------------


class _Reader:
    """A cursor over the record that turns running out of bytes into a located error."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int, field: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise TemplateFormatError(
                f"record truncated: {size} bytes needed, {len(self.data) - self.offset} left",
                field=field,
                offset=self.offset,
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk


def decode_template(
    data: bytes, *, format: RecordFormat | None = None, strict: bool = False
) -> MinutiaeRecord:
    """Read a finger minutiae record, ISO/IEC 19794-2:2005 or ANSI/INCITS 378-2004.

    Parameters
    ----------
    data : bytes
        The whole record.
    format : RecordFormat, optional
        Force a format instead of detecting it. Both start with ``FMR\\0 20\\0``; the record
        length field (4 bytes in ISO, 2 or 6 in ANSI) tells them apart, and the other format
        is tried when the likely one does not parse.
    strict : bool
        Also refuse a record length field that disagrees with the structure (by default it is
        tolerated and kept in ``length_field``).

    Returns
    -------
    record : MinutiaeRecord

    Raises
    ------
    TemplateFormatError
        The bytes are not a valid record; the error names the field and its byte offset.
    """
    return _decode(data, format=format, strict=strict, build=True).record


@dataclass(frozen=True, slots=True)
class ViewSummary:
    """What :func:`check_template` tells of one finger view."""

    position: FingerPosition
    quality: int  # finger view quality 0-100
    minutiae: int  # number of minutiae


def check_template(
    data: bytes, *, format: RecordFormat | None = None, strict: bool = False
) -> tuple[ViewSummary, ...]:
    """Check a finger minutiae record as :func:`decode_template` reads it, without building
    its minutiae: for a server that stores templates and only needs them valid.

    Same parameters, same checks and the same :class:`TemplateFormatError` (field and byte
    offset) for every record :func:`decode_template` refuses; accepts exactly the records it
    accepts. Returns the views' positions, qualities and minutia counts, in record order.
    """
    decoded = _decode(data, format=format, strict=strict, build=False)
    return tuple(
        ViewSummary(position=view.position, quality=view.quality, minutiae=count)
        for view, count in zip(decoded.record.views, decoded.counts, strict=True)
    )


class _Decoded(NamedTuple):
    record: MinutiaeRecord  # views without their minutiae when not built
    counts: tuple[int, ...]  # minutiae per view


def _decode(data: bytes, *, format: RecordFormat | None, strict: bool, build: bool) -> _Decoded:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"a minutiae record is bytes, got {type(data).__name__}")
    data = bytes(data)
    _check_identifier(data)
    if format is not None:
        return _decode_as(data, RecordFormat(format), strict=strict, build=build)
    likely = _likely_format(data)
    other = (
        RecordFormat.ANSI_378_2004
        if likely is RecordFormat.ISO_19794_2_2005
        else RecordFormat.ISO_19794_2_2005
    )
    try:
        return _decode_as(data, likely, strict=strict, build=build)
    except TemplateFormatError as first:
        try:
            return _decode_as(data, other, strict=True, build=build)
        except TemplateFormatError:
            raise first from None


def _check_identifier(data: bytes) -> None:
    reader = _Reader(data)
    magic = reader.take(4, "format identifier")
    if magic != MAGIC:
        raise TemplateFormatError(
            f"expected {MAGIC!r}, got {magic!r}: not a finger minutiae record",
            field="format identifier",
            offset=0,
        )
    version = reader.take(4, "version")
    if version != VERSION_2005:
        raise TemplateFormatError(
            f"unsupported version {version!r}: only the 2004/2005 editions (' 20') are read",
            field="version",
            offset=4,
        )


def _likely_format(data: bytes) -> RecordFormat:
    """Guess from the length field: whichever reading of it is nearer the actual size."""
    if len(data) < 12:
        return RecordFormat.ISO_19794_2_2005
    iso_length = _U32.unpack_from(data, 8)[0]
    (ansi_length,) = _U16.unpack_from(data, 8)
    if ansi_length == 0 and len(data) >= 14:
        ansi_length = _U32.unpack_from(data, 10)[0]
    if abs(ansi_length - len(data)) < abs(iso_length - len(data)):
        return RecordFormat.ANSI_378_2004
    return RecordFormat.ISO_19794_2_2005


def _decode_as(data: bytes, record_format: RecordFormat, *, strict: bool, build: bool) -> _Decoded:
    reader = _Reader(data, 8)
    product_owner = product_type = 0
    long_length = False
    if record_format is RecordFormat.ISO_19794_2_2005:
        (length_field,) = _U32.unpack(reader.take(4, "record length"))
        minimum = ISO_HEADER_SIZE
        angle_steps = ISO_ANGLE_STEPS
    else:
        (length_field,) = _U16.unpack(reader.take(2, "record length"))
        minimum = ANSI_HEADER_SIZE
        if length_field == 0:
            (length_field,) = _U32.unpack(reader.take(4, "record length (long form)"))
            minimum += 4
            long_length = True
        product_owner, product_type = struct.unpack(
            ">HH", reader.take(4, "CBEFF product identifier")
        )
        angle_steps = ANSI_ANGLE_STEPS
    if length_field < minimum:
        raise TemplateFormatError(
            f"record length {length_field} is shorter than the {minimum}-byte header",
            field="record length",
            offset=8,
        )
    header_offset = reader.offset
    equipment, width, height, x_res, y_res, n_views, reserved = _HEADER_TAIL.unpack(
        reader.take(_HEADER_TAIL.size, "record header")
    )
    if reserved != 0:
        raise TemplateFormatError(
            f"reserved byte must be 0, got {reserved}",
            field="header reserved byte",
            offset=header_offset + 11,
        )
    for name, value, offset in (("x resolution", x_res, 6), ("y resolution", y_res, 8)):
        if value == 0:
            raise TemplateFormatError(
                "resolution must be positive (pixels per centimetre)",
                field=name,
                offset=header_offset + offset,
            )
    dpi = ppcm_to_dpi(x_res)
    views: list[FingerTemplate] = []
    view_numbers: list[int] = []
    extended: list[tuple[ExtendedDataBlock, ...]] = []
    counts: list[int] = []
    for index in range(n_views):
        view, number, blocks, count = _decode_view(
            reader,
            index=index,
            width=width,
            height=height,
            dpi=dpi,
            angle_steps=angle_steps,
            build=build,
        )
        views.append(view)
        view_numbers.append(number)
        extended.append(blocks)
        counts.append(count)
    length = reader.offset
    # A record stored in a fixed-size buffer (a card, a database column) may come with zero
    # padding: accepted when the length field vouches for the structure, and not kept.
    padded = length_field == length and not any(data[length:])
    if length != len(data) and not padded:
        raise TemplateFormatError(
            f"{len(data) - length} unexpected bytes after the last finger view",
            field="end of record",
            offset=length,
        )
    if strict and length_field != length:
        raise TemplateFormatError(
            f"record length field says {length_field} bytes, the record holds {length}",
            field="record length",
            offset=8,
        )
    record = MinutiaeRecord(
        format=record_format,
        views=tuple(views),
        view_numbers=tuple(view_numbers),
        extended_data=tuple(extended),
        width=width,
        height=height,
        x_resolution=x_res,
        y_resolution=y_res,
        capture_equipment_compliance=equipment >> 12,
        capture_equipment_id=equipment & 0xFFF,
        length_field=length_field,
        length=length,
        product_owner=product_owner,
        product_type=product_type,
        long_length=long_length,
    )
    return _Decoded(record, tuple(counts))


def _decode_view(
    reader: _Reader,
    *,
    index: int,
    width: int,
    height: int,
    dpi: float,
    angle_steps: int,
    build: bool,
) -> tuple[FingerTemplate, int, tuple[ExtendedDataBlock, ...], int]:
    where = f"finger view {index}"
    start = reader.offset
    position, number_and_impression, quality, count = _VIEW_HEADER.unpack(
        reader.take(VIEW_HEADER_SIZE, f"{where} header")
    )
    if position > max(FingerPosition):
        raise TemplateFormatError(
            f"finger position {position} is not a code of the standard (0-10)",
            field=f"{where} finger position",
            offset=start,
        )
    if quality > MAX_QUALITY:
        raise TemplateFormatError(
            f"finger quality {quality} over 100", field=f"{where} quality", offset=start + 2
        )
    minutiae = _decode_minutiae(
        reader, view=where, count=count, angle_steps=angle_steps, build=build
    )
    ext_offset = reader.offset
    (ext_length,) = _U16.unpack(reader.take(EXTENDED_LENGTH_SIZE, f"{where} extended data length"))
    blocks = _decode_extended(
        _Reader(reader.take(ext_length, f"{where} extended data"), 0),
        where=where,
        base=ext_offset + EXTENDED_LENGTH_SIZE,
    )
    template = FingerTemplate(
        width=width,
        height=height,
        dpi=dpi,
        minutiae=minutiae,
        position=FingerPosition(position),
        quality=quality,
        impression=number_and_impression & 0xF,
    )
    return template, number_and_impression >> 4, blocks, count


def _decode_minutiae(
    reader: _Reader, *, view: str, count: int, angle_steps: int, build: bool
) -> tuple[Minutia, ...]:
    """The ``count`` minutiae of a view, checked all at once; built unless ``build`` is false.

    Each check reads one byte column of the 6-byte minutiae (a strided slice, its maximum
    taken in C): type and x's high byte, y's high byte, angle, quality. Only when one fails
    are the minutiae checked one by one, to word the error of the first bad one exactly.
    """
    data, offset = reader.data, reader.offset
    whole = min(count, (len(data) - offset) // MINUTIA_SIZE)  # those not cut by the end
    end = offset + whole * MINUTIA_SIZE
    if (
        whole
        and (
            max(data[offset:end:MINUTIA_SIZE]) >= 0xC0  # type 11b
            or max(data[offset + 2 : end : MINUTIA_SIZE]) >= 0x40  # reserved bits before y
            or max(data[offset + 4 : end : MINUTIA_SIZE]) >= angle_steps
            or max(data[offset + 5 : end : MINUTIA_SIZE]) > MAX_QUALITY
        )
    ):
        for index in range(whole):
            _check_minutia(
                data, offset + index * MINUTIA_SIZE, view=view, index=index, angle_steps=angle_steps
            )
    reader.offset = end
    if whole < count:
        reader.take(MINUTIA_SIZE, f"{view} minutia {whole}")  # raises, located
    if not build:
        return ()
    return tuple(
        Minutia(
            x=type_x & MAX_COORDINATE,
            y=y,  # the reserved bits are 0 (checked above)
            angle=angle * _TWO_PI / angle_steps,  # the step in radians, as the writer's inverse
            kind=_MINUTIA_KINDS[type_x >> 14],
            quality=quality,
        )
        for type_x, y, angle, quality in _MINUTIA.iter_unpack(data[offset:end])
    )


def _check_minutia(data: bytes, offset: int, *, view: str, index: int, angle_steps: int) -> None:
    """The checks of one whole minutia, in field order, each error located."""
    type_x, reserved_y, angle, quality = _MINUTIA.unpack_from(data, offset)
    kind = type_x >> 14
    if kind == 3:
        raise TemplateFormatError(
            "minutia type 11b is reserved", field=f"{view} minutia {index} type", offset=offset
        )
    if reserved_y >> 14:
        raise TemplateFormatError(
            "the 2 reserved bits before y must be 0",
            field=f"{view} minutia {index} y",
            offset=offset + 2,
        )
    if angle >= angle_steps:
        raise TemplateFormatError(
            f"angle {angle} out of range 0..{angle_steps - 1}",
            field=f"{view} minutia {index} angle",
            offset=offset + 4,
        )
    if quality > MAX_QUALITY:
        raise TemplateFormatError(
            f"minutia quality {quality} over 100",
            field=f"{view} minutia {index} quality",
            offset=offset + 5,
        )


def _decode_extended(reader: _Reader, *, where: str, base: int) -> tuple[ExtendedDataBlock, ...]:
    blocks: list[ExtendedDataBlock] = []
    while reader.offset < len(reader.data):
        offset = base + reader.offset
        try:
            type_id, block_length = struct.unpack(
                ">HH", reader.take(EXTENDED_BLOCK_HEADER_SIZE, "block header")
            )
        except TemplateFormatError:
            raise TemplateFormatError(
                f"{len(reader.data) - reader.offset} bytes left, too few for a block header",
                field=f"{where} extended data block",
                offset=offset,
            ) from None
        if block_length < EXTENDED_BLOCK_HEADER_SIZE:
            raise TemplateFormatError(
                f"block length {block_length} shorter than its own 4-byte header",
                field=f"{where} extended data block length",
                offset=offset + 2,
            )
        size = block_length - EXTENDED_BLOCK_HEADER_SIZE
        if reader.offset + size > len(reader.data):
            raise TemplateFormatError(
                f"block of {block_length} bytes overruns the extended data "
                f"({len(reader.data)} bytes)",
                field=f"{where} extended data block length",
                offset=offset + 2,
            )
        blocks.append(ExtendedDataBlock(type_id, reader.take(size, "block data")))
    return tuple(blocks)
