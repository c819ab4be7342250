"""The sans-IO codec on frames computed by hand from R30X-PROTOCOL.md."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.r30x_codec import (
    Packet,
    PacketDecoder,
    Rejected,
    RejectReason,
    checksum,
    encode_packet,
)
from edge.drivers.r30x_commands import (
    COMMANDS,
    IMAGE_BYTES,
    Command,
    PacketId,
    SystemParameters,
    command_by_code,
)
from edge.drivers.r30x_image import pack_image, unpack_image

# (description, packet id, payload, frame as written in the protocol document / by hand)
FRAMES = [
    # The document's example: VfyPwd, password 0.
    (
        "VfyPwd 0",
        PacketId.COMMAND,
        bytes.fromhex("1300000000"),
        "EF01 FFFFFFFF 01 0007 13 00000000 001B",
    ),
    # GenImg: 01 + 00 + 03 + 01 = 0x0005.
    ("GenImg", PacketId.COMMAND, bytes.fromhex("01"), "EF01 FFFFFFFF 01 0003 01 0005"),
    # Plain ack OK: 07 + 00 + 03 + 00 = 0x000A.
    ("ack ok", PacketId.ACK, bytes.fromhex("00"), "EF01 FFFFFFFF 07 0003 00 000A"),
    # No finger: 07 + 00 + 03 + 02 = 0x000C.
    ("ack no finger", PacketId.ACK, bytes.fromhex("02"), "EF01 FFFFFFFF 07 0003 02 000C"),
    # TempleteNum reply, 3 templates: 07 + 00 + 05 + 00 + 00 + 03 = 0x000F.
    ("TempleteNum 3", PacketId.ACK, bytes.fromhex("000003"), "EF01 FFFFFFFF 07 0005 00 0003 000F"),
    # Search buffer 1, pages 0..999: 01+00+08+04+01+00+00+03+E8 = 0x00F9.
    (
        "Search",
        PacketId.COMMAND,
        bytes.fromhex("0401000003E8"),
        "EF01 FFFFFFFF 01 0008 04 01 0000 03E8 00F9",
    ),
    # End of data, two bytes FF FF: 08 + 00 + 04 + FF + FF = 0x020A.
    ("end data", PacketId.END_DATA, b"\xff\xff", "EF01 FFFFFFFF 08 0004 FFFF 020A"),
]


def _hex(frame: str) -> bytes:
    return bytes.fromhex(frame.replace(" ", ""))


@pytest.mark.parametrize(
    ("name", "packet_id", "payload", "frame"), FRAMES, ids=[f[0] for f in FRAMES]
)
def test_encode_matches_hand_computed_frame(
    name: str, packet_id: PacketId, payload: bytes, frame: str
) -> None:
    assert encode_packet(packet_id, payload) == _hex(frame)


@pytest.mark.parametrize(
    ("name", "packet_id", "payload", "frame"), FRAMES, ids=[f[0] for f in FRAMES]
)
def test_decode_hand_computed_frame(
    name: str, packet_id: PacketId, payload: bytes, frame: str
) -> None:
    assert PacketDecoder().feed(_hex(frame)) == [Packet(packet_id, payload)]


def test_command_declarations_encode_their_parameters() -> None:
    assert COMMANDS.VFY_PWD.encode_params(0) == bytes.fromhex("1300000000")
    assert COMMANDS.SEARCH.encode_params(1, 0, 1000) == bytes.fromhex("0401000003E8")
    assert COMMANDS.STORE.decode_params(bytes.fromhex("0602000A")) == (2, 10)


def test_every_command_code_is_declared_once() -> None:
    declared = [c for c in vars(COMMANDS).values() if isinstance(c, Command)]
    codes = [c.code for c in declared]
    assert len(codes) == len(set(codes))
    for command in declared:
        assert command_by_code(command.code) is command
    assert command_by_code(0x99) is None


@pytest.mark.parametrize(
    ("command", "reply_bytes"),
    [
        # Reply lengths host libraries read blindly (R30X-PROTOCOL.md, "What host software...").
        (COMMANDS.GEN_IMG, 12),
        (COMMANDS.STORE, 12),
        (COMMANDS.TEMPLATE_NUM, 14),
        (COMMANDS.MATCH, 14),
        (COMMANDS.SEARCH, 16),
        (COMMANDS.READ_SYS_PARA, 28),
        (COMMANDS.READ_INDEX_TABLE, 44),
    ],
)
def test_fixed_reply_lengths(command: Command, reply_bytes: int) -> None:
    assert 11 + command.ack_payload_size == reply_bytes


def test_one_byte_at_a_time() -> None:
    decoder = PacketDecoder()
    stream = b"".join(_hex(f[3]) for f in FRAMES)
    events: list[Packet | Rejected] = []
    for byte in stream:
        events += decoder.feed(bytes([byte]))
    assert [e for e in events if isinstance(e, Packet)] == [Packet(f[1], f[2]) for f in FRAMES]
    assert decoder.pending == 0


def test_garbage_prefix_is_reported_and_skipped() -> None:
    events = PacketDecoder().feed(b"\x00\x13\xef\xaa" + _hex(FRAMES[0][3]))
    assert events[-1] == Packet(PacketId.COMMAND, FRAMES[0][2])
    assert sum(e.size for e in events if isinstance(e, Rejected)) == 4


def test_bad_checksum_rejected_and_next_packet_kept() -> None:
    bad = bytearray(_hex(FRAMES[2][3]))
    bad[-1] ^= 0x01
    events = PacketDecoder().feed(bytes(bad) + _hex(FRAMES[3][3]))
    assert Rejected(RejectReason.BAD_CHECKSUM, 2) in events
    assert events[-1] == Packet(PacketId.ACK, b"\x02")


def test_corrupted_length_does_not_swallow_the_next_packet() -> None:
    # A length of 0x00FF makes the first frame claim the second: the checksum fails, the
    # decoder skips only the header and finds the second frame.
    bad = bytearray(_hex(FRAMES[1][3]))
    bad[8] = 0x20
    good = _hex(FRAMES[4][3])
    events = PacketDecoder().feed(bytes(bad) + good + bytes(40))
    assert Packet(PacketId.ACK, FRAMES[4][2]) in events


def test_impossible_header_is_skipped() -> None:
    # EF 01 inside data, followed by an unknown packet id.
    events = PacketDecoder().feed(b"\xef\x01\xff\xff\xff\xff\x55\x00\x03" + _hex(FRAMES[2][3]))
    assert events[0] == Rejected(RejectReason.BAD_HEADER, 2)
    assert events[-1] == Packet(PacketId.ACK, b"\x00")


def test_partial_packet_waits_then_reset_drops_it() -> None:
    decoder = PacketDecoder()
    assert decoder.feed(_hex(FRAMES[0][3])[:7]) == []
    assert decoder.pending == 7
    assert decoder.reset() == Rejected(RejectReason.STALE, 7)
    assert decoder.feed(_hex(FRAMES[2][3])) == [Packet(PacketId.ACK, b"\x00")]


def test_other_address_is_decoded_with_it() -> None:
    frame = encode_packet(PacketId.ACK, b"\x00", address=0x12345678)
    assert PacketDecoder().feed(frame) == [Packet(PacketId.ACK, b"\x00", 0x12345678)]


def test_packet_validation() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        Packet(PacketId.DATA, bytes(257))
    with pytest.raises(ValueError, match="32-bit"):
        Packet(PacketId.DATA, b"", address=2**32)


_payloads = st.binary(min_size=0, max_size=256)
_ids = st.sampled_from(list(PacketId))
# Garbage never holds 0xEF, so it cannot forge a header that hides a real packet.
_garbage = st.binary(max_size=20).map(lambda b: b.replace(b"\xef", b"\x00"))


@given(
    packets=st.lists(st.tuples(_ids, _payloads, _garbage), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=50),
)
def test_any_split_with_garbage_recovers_every_packet(
    packets: list[tuple[PacketId, bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(g + encode_packet(i, p) for i, p, g in packets)
    decoder = PacketDecoder()
    events: list[Packet | Rejected] = []
    position = 0
    for cut in cuts:
        events += decoder.feed(stream[position : position + cut])
        position += cut
    events += decoder.feed(stream[position:])
    assert [e for e in events if isinstance(e, Packet)] == [Packet(i, p) for i, p, _ in packets]


@given(packet_id=_ids, payload=_payloads)
def test_checksum_is_low_16_bits_of_the_sum(packet_id: PacketId, payload: bytes) -> None:
    length = len(payload) + 2
    assert (
        checksum(packet_id, payload)
        == (packet_id + length // 256 + length % 256 + sum(payload)) % 65536
    )


def test_image_nibbles_high_first() -> None:
    data = bytes([0xF0, 0x1E]) + bytes(IMAGE_BYTES - 2)
    image = unpack_image(data)
    assert image.shape == (288, 256)
    assert image.dtype == np.uint8
    assert image[0, :4].tolist() == [255, 0, 17, 238]


def test_image_round_trip_and_rounding() -> None:
    rng = np.random.default_rng(1)
    image = (rng.integers(0, 16, size=(288, 256)) * 17).astype(np.uint8)
    assert np.array_equal(unpack_image(pack_image(image)), image)
    # Values between levels round to the nearest level.
    assert unpack_image(pack_image(np.full((288, 256), 26, np.uint8)))[0, 0] == 34


def test_image_size_errors() -> None:
    with pytest.raises(ValueError, match="36864"):
        unpack_image(bytes(100))
    with pytest.raises(ValueError, match="uint8"):
        pack_image(np.zeros((256, 288), np.uint8))


def test_system_parameters_fields_round_trip() -> None:
    params = SystemParameters(capacity=200, packet_size_code=3, baud_multiplier=12)
    assert SystemParameters.from_fields(params.fields()) == params
    assert params.packet_size == 256
    assert params.baudrate == 115200
    reply = COMMANDS.READ_SYS_PARA.reply.pack(*params.fields())
    assert len(reply) == 16
    with pytest.raises(ValueError, match="packet size"):
        SystemParameters(packet_size_code=4)
