"""The device model alone (sans-IO): packets in, packets out."""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.features import IdentityEngine
from dr_sim.sensor_model import PlacedFinger, SensorModel
from numpy.typing import NDArray

from edge.drivers.r30x_codec import Packet
from edge.drivers.r30x_commands import (
    COMMANDS,
    IMAGE_BYTES,
    Command,
    Confirmation,
    PacketId,
    SysParam,
    SystemParameters,
)
from edge.drivers.r30x_image import pack_image


class _Stripes:
    """A tiny stand-in finger: stripes whose period depends on the identity."""

    def __init__(self, identity: int) -> None:
        self.identity = identity

    def capture(self, rng: np.random.Generator) -> NDArray[np.uint8]:
        cols = np.arange(256)
        period = 6 + self.identity % 5
        row = ((np.sin(2 * np.pi * cols / period) > 0) * 15).astype(np.uint8)
        image = np.repeat(row[np.newaxis], 288, axis=0)
        return (image * 17).astype(np.uint8)


def _finger(identity: int) -> PlacedFinger:
    return PlacedFinger(_Stripes(identity), f"stripes:{identity}")


def _model(**options: object) -> SensorModel:
    return SensorModel(engine=IdentityEngine(), rng=np.random.default_rng(0), **options)  # type: ignore[arg-type]


def _send(model: SensorModel, command: Command, *params: int) -> list[Packet]:
    return model.on_packet(Packet(PacketId.COMMAND, command.encode_params(*params)))


def _code(replies: list[Packet]) -> int:
    assert replies[0].packet_id is PacketId.ACK
    return replies[0].payload[0]


# Each command with parameters that make it fail on a fresh module.
FAILING = [
    (COMMANDS.GEN_IMG, ()),
    (COMMANDS.IMG2TZ, (1,)),
    (COMMANDS.MATCH, ()),
    (COMMANDS.SEARCH, (1, 0, 1000)),
    (COMMANDS.HI_SPEED_SEARCH, (1, 0, 1000)),
    (COMMANDS.REG_MODEL, ()),
    (COMMANDS.STORE, (1, 5000)),
    (COMMANDS.LOAD_CHAR, (1, 3)),
    (COMMANDS.UP_CHAR, (1,)),
    (COMMANDS.UP_IMAGE, ()),
    (COMMANDS.DELET_CHAR, (999, 5)),
    (COMMANDS.SET_SYS_PARA, (9, 1)),
    (COMMANDS.READ_INDEX_TABLE, (7,)),
    (COMMANDS.VFY_PWD, (1234,)),
]


@pytest.mark.parametrize(("command", "params"), FAILING, ids=[c.name for c, _ in FAILING])
def test_failure_replies_keep_the_fixed_length(command: Command, params: tuple[int, ...]) -> None:
    replies = _send(_model(), command, *params)
    assert len(replies) == 1
    assert _code(replies) != Confirmation.OK
    assert len(replies[0].payload) == command.ack_payload_size
    assert len(replies[0].encode()) == 11 + command.ack_payload_size


def test_password_required_before_other_commands() -> None:
    model = _model(password=42)
    assert _code(_send(model, COMMANDS.TEMPLATE_NUM)) == 0x21
    assert _code(_send(model, COMMANDS.VFY_PWD, 41)) == Confirmation.WRONG_PASSWORD
    assert _code(_send(model, COMMANDS.VFY_PWD, 42)) == Confirmation.OK
    assert _code(_send(model, COMMANDS.TEMPLATE_NUM)) == Confirmation.OK
    model.power_cycle()
    assert _code(_send(model, COMMANDS.TEMPLATE_NUM)) == 0x21


def test_other_address_is_ignored() -> None:
    model = _model()
    packet = Packet(PacketId.COMMAND, COMMANDS.GEN_IMG.encode_params(), address=0x1)
    assert model.on_packet(packet) == []
    assert _code(_send(model, COMMANDS.SET_ADDER, 0x1)) == Confirmation.OK
    assert model.on_packet(packet)[0].address == 0x1


def test_unknown_command_and_bad_frame_are_receive_errors() -> None:
    model = _model()
    assert model.on_packet(Packet(PacketId.COMMAND, b"\x99"))[0].payload == b"\x01"
    assert model.on_bad_frame()[0].payload == b"\x01"


def test_capture_enrol_search() -> None:
    model = _model()
    model.finger = _finger(1)
    for buffer in (1, 2):
        assert _code(_send(model, COMMANDS.GEN_IMG)) == Confirmation.OK
        assert _code(_send(model, COMMANDS.IMG2TZ, buffer)) == Confirmation.OK
    assert _code(_send(model, COMMANDS.REG_MODEL)) == Confirmation.OK
    assert _code(_send(model, COMMANDS.STORE, 1, 17)) == Confirmation.OK
    model.finger = _finger(2)
    _send(model, COMMANDS.GEN_IMG)
    _send(model, COMMANDS.IMG2TZ, 1)
    assert _code(_send(model, COMMANDS.SEARCH, 1, 0, 1000)) == Confirmation.NOT_FOUND
    model.finger = _finger(1)
    _send(model, COMMANDS.GEN_IMG)
    _send(model, COMMANDS.IMG2TZ, 1)
    reply = _send(model, COMMANDS.SEARCH, 1, 0, 1000)[0]
    page, score = COMMANDS.SEARCH.reply.unpack(reply.payload[1:])
    assert (reply.payload[0], page) == (Confirmation.OK, 17)
    assert score >= model.engine.threshold
    # Outside the searched range: not found.
    assert _code(_send(model, COMMANDS.SEARCH, 1, 18, 100)) == Confirmation.NOT_FOUND


def test_up_image_sends_data_packets_of_the_configured_size() -> None:
    model = _model(params=SystemParameters(packet_size_code=1))
    model.finger = _finger(1)
    _send(model, COMMANDS.GEN_IMG)
    replies = _send(model, COMMANDS.UP_IMAGE)
    assert _code(replies) == Confirmation.OK
    data = replies[1:]
    assert all(p.packet_id is PacketId.DATA for p in data[:-1])
    assert data[-1].packet_id is PacketId.END_DATA
    assert {len(p.payload) for p in data} == {64}
    assert b"".join(p.payload for p in data) == pack_image(model.image)  # type: ignore[arg-type]


def test_down_image_then_features() -> None:
    model = _model()
    image = _Stripes(3).capture(np.random.default_rng(0))
    data = pack_image(image)
    assert _code(_send(model, COMMANDS.DOWN_IMAGE)) == Confirmation.OK
    for start in range(0, IMAGE_BYTES, 128):
        last = start + 128 >= IMAGE_BYTES
        packet_id = PacketId.END_DATA if last else PacketId.DATA
        assert model.on_packet(Packet(packet_id, data[start : start + 128])) == []
    assert model.image is not None
    assert np.array_equal(model.image, image)
    assert _code(_send(model, COMMANDS.IMG2TZ, 2)) == Confirmation.OK


def test_forced_faults_in_order() -> None:
    model = _model()
    model.finger = _finger(1)
    model.faults.extend([Confirmation.NO_FINGER, Confirmation.MESSY_IMAGE])
    assert _code(_send(model, COMMANDS.GEN_IMG)) == Confirmation.NO_FINGER
    assert _code(_send(model, COMMANDS.GEN_IMG)) == Confirmation.OK
    assert _code(_send(model, COMMANDS.IMG2TZ, 1)) == Confirmation.MESSY_IMAGE
    assert _code(_send(model, COMMANDS.GEN_IMG)) == Confirmation.OK
    assert _code(_send(model, COMMANDS.IMG2TZ, 1)) == Confirmation.OK


def test_set_sys_para_and_index_table() -> None:
    model = _model()
    assert _code(_send(model, COMMANDS.SET_SYS_PARA, SysParam.PACKET_SIZE, 3)) == Confirmation.OK
    assert model.params.packet_size == 256
    assert (
        _code(_send(model, COMMANDS.SET_SYS_PARA, SysParam.BAUD, 13)) == Confirmation.BAD_REGISTER
    )
    assert _code(_send(model, COMMANDS.SET_SYS_PARA, SysParam.BAUD, 12)) == Confirmation.OK
    assert model.params.baudrate == 115200
    model.library = {0: b"a", 9: b"b", 256: b"c"}
    bitmap = _send(model, COMMANDS.READ_INDEX_TABLE, 0)[0].payload[1:]
    assert bitmap[:2] == bytes([0b1, 0b10])
    assert not any(bitmap[2:])
    assert _send(model, COMMANDS.READ_INDEX_TABLE, 1)[0].payload[1] == 0b1
    assert _code(_send(model, COMMANDS.DELET_CHAR, 0, 10)) == Confirmation.OK
    assert set(model.library) == {256}


def test_blank_image_has_too_few_features() -> None:
    model = _model()
    model.image = np.full((288, 256), 255, np.uint8)
    model.image_key = "blank"
    assert _code(_send(model, COMMANDS.IMG2TZ, 1)) == Confirmation.TOO_FEW_FEATURES
