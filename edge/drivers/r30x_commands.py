"""The R30x / ZFM / AS608 command set, declared once as data.

The driver (``edge.drivers.sensor``) and the simulator (``dr_sim``) both import these
declarations: each command's code, parameter layout and reply layout appear nowhere else.

Every reply is an acknowledgement packet whose payload is a confirmation code followed by the
command's reply fields. Reply lengths are fixed per command whatever the confirmation code
(host libraries read a fixed number of bytes), so a failed Search still carries its
(page, score) fields, zeroed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

__all__ = [
    "COMMANDS",
    "IMAGE_BYTES",
    "IMAGE_COLS",
    "IMAGE_DPI",
    "IMAGE_ROWS",
    "MAX_BAUD_MULTIPLIER",
    "MAX_SET_BAUD_MULTIPLIER",
    "PACKET_SIZES",
    "TEMPLATE_BYTES",
    "Command",
    "Confirmation",
    "DataDirection",
    "PacketId",
    "SysParam",
    "SystemParameters",
    "command_by_code",
]


class PacketId(enum.IntEnum):
    """The packet identifier byte that follows the address."""

    COMMAND = 0x01
    DATA = 0x02  # a data packet, more follow
    ACK = 0x07
    END_DATA = 0x08  # the last data packet of a transfer


class Confirmation(enum.IntEnum):
    """Confirmation codes: the first payload byte of every acknowledgement."""

    OK = 0x00
    RECEIVE_ERROR = 0x01
    NO_FINGER = 0x02
    IMAGE_FAIL = 0x03
    MESSY_IMAGE = 0x06
    TOO_FEW_FEATURES = 0x07
    NO_MATCH = 0x08
    NOT_FOUND = 0x09
    MERGE_FAILED = 0x0A
    BAD_PAGE = 0x0B
    TEMPLATE_READ_ERROR = 0x0C
    TEMPLATE_UPLOAD_ERROR = 0x0D
    DATA_RECEIVE_ERROR = 0x0E
    IMAGE_UPLOAD_ERROR = 0x0F
    DELETE_FAILED = 0x10
    EMPTY_FAILED = 0x11
    WRONG_PASSWORD = 0x13
    NO_VALID_IMAGE = 0x15
    FLASH_ERROR = 0x18
    BAD_REGISTER = 0x1A


class DataDirection(enum.Enum):
    """Which side sends data packets after the acknowledgement of a command."""

    TO_HOST = "to_host"  # UpChar, UpImage
    TO_DEVICE = "to_device"  # DownChar, DownImage


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its code, its parameters and the fields of its reply.

    ``params`` and ``reply`` are big-endian :class:`struct.Struct` layouts of what follows the
    command code (in the command packet) and the confirmation code (in the acknowledgement).
    """

    name: str
    code: int
    params: struct.Struct = field(default_factory=lambda: struct.Struct(">"))
    reply: struct.Struct = field(default_factory=lambda: struct.Struct(">"))
    data: DataDirection | None = None

    @property
    def ack_payload_size(self) -> int:
        """Bytes of the acknowledgement payload: confirmation code plus reply fields."""
        return 1 + self.reply.size

    def encode_params(self, *values: int) -> bytes:
        """The command packet payload: code followed by the packed parameters."""
        return bytes([self.code]) + self.params.pack(*values)

    def decode_params(self, payload: bytes) -> tuple[int, ...]:
        """Parameters of a command packet payload (the code byte included in ``payload``)."""
        return self.params.unpack(payload[1 : 1 + self.params.size])


def _s(fmt: str) -> struct.Struct:
    return struct.Struct(">" + fmt)


class COMMANDS:
    """Every command of the protocol (R30X-PROTOCOL.md, table "Commands")."""

    GEN_IMG = Command("GenImg", 0x01)
    IMG2TZ = Command("Img2Tz", 0x02, params=_s("B"))  # buffer
    MATCH = Command("Match", 0x03, reply=_s("H"))  # score
    # buffer, start page, page count / page, score
    SEARCH = Command("Search", 0x04, params=_s("BHH"), reply=_s("HH"))
    REG_MODEL = Command("RegModel", 0x05)
    STORE = Command("Store", 0x06, params=_s("BH"))  # buffer, page
    LOAD_CHAR = Command("LoadChar", 0x07, params=_s("BH"))  # buffer, page
    UP_CHAR = Command("UpChar", 0x08, params=_s("B"), data=DataDirection.TO_HOST)
    DOWN_CHAR = Command("DownChar", 0x09, params=_s("B"), data=DataDirection.TO_DEVICE)
    UP_IMAGE = Command("UpImage", 0x0A, data=DataDirection.TO_HOST)
    DOWN_IMAGE = Command("DownImage", 0x0B, data=DataDirection.TO_DEVICE)
    DELET_CHAR = Command("DeletChar", 0x0C, params=_s("HH"))  # page, count
    EMPTY = Command("Empty", 0x0D)
    SET_SYS_PARA = Command("SetSysPara", 0x0E, params=_s("BB"))  # parameter, value
    READ_SYS_PARA = Command("ReadSysPara", 0x0F, reply=_s("HHHHIHH"))
    SET_PWD = Command("SetPwd", 0x12, params=_s("I"))
    VFY_PWD = Command("VfyPwd", 0x13, params=_s("I"))
    GET_RANDOM_CODE = Command("GetRandomCode", 0x14, reply=_s("I"))
    SET_ADDER = Command("SetAdder", 0x15, params=_s("I"))
    HI_SPEED_SEARCH = Command("HiSpeedSearch", 0x1B, params=_s("BHH"), reply=_s("HH"))
    TEMPLATE_NUM = Command("TempleteNum", 0x1D, reply=_s("H"))
    READ_INDEX_TABLE = Command("ReadIndexTable", 0x1F, params=_s("B"), reply=_s("32s"))
    AURA_LED_CONFIG = Command("AuraLedConfig", 0x35, params=_s("BBBB"))  # ctrl, speed, colour, n


_BY_CODE: dict[int, Command] = {
    c.code: c for c in vars(COMMANDS).values() if isinstance(c, Command)
}


def command_by_code(code: int) -> Command | None:
    """The declaration of command ``code``, or None for a code this protocol does not know."""
    return _BY_CODE.get(code)


class SysParam(enum.IntEnum):
    """Parameter numbers of SetSysPara."""

    BAUD = 4  # value N: baud = 9600 * N
    SECURITY_LEVEL = 5  # 1..5
    PACKET_SIZE = 6  # size code 0..3


# Datasheets list N in 1..12 (SetSysPara accepts only those); fast clones and USB bridges run
# up to 921600 baud (N = 96), which ReadSysPara's 2-byte field reports as is.
MAX_SET_BAUD_MULTIPLIER = 12
MAX_BAUD_MULTIPLIER = 96

# Data packet size by ReadSysPara's size code.
PACKET_SIZES: tuple[int, ...] = (32, 64, 128, 256)

# The image buffer: 256 columns x 288 rows at 508 dpi, 4 bits per pixel, two pixels a byte.
IMAGE_ROWS = 288
IMAGE_COLS = 256
IMAGE_DPI = 508
IMAGE_BYTES = IMAGE_ROWS * IMAGE_COLS // 2

# A character file (char buffer or stored template) as UpChar/DownChar move it: 512 bytes.
TEMPLATE_BYTES = 512


@dataclass(frozen=True, slots=True)
class SystemParameters:
    """The 16 bytes of ReadSysPara's reply."""

    status: int = 0
    system_id: int = 0x0009
    capacity: int = 1000
    security_level: int = 3
    address: int = 0xFFFFFFFF
    packet_size_code: int = 2
    baud_multiplier: int = 6

    def __post_init__(self) -> None:
        if not 0 <= self.packet_size_code < len(PACKET_SIZES):
            raise ValueError(f"packet size code must be 0-3, got {self.packet_size_code}")
        if not 1 <= self.baud_multiplier <= MAX_BAUD_MULTIPLIER:
            raise ValueError(
                f"baud multiplier must be 1-{MAX_BAUD_MULTIPLIER}, got {self.baud_multiplier}"
            )
        if not 1 <= self.security_level <= 5:
            raise ValueError(f"security level must be 1-5, got {self.security_level}")

    @property
    def packet_size(self) -> int:
        return PACKET_SIZES[self.packet_size_code]

    @property
    def baudrate(self) -> int:
        return 9600 * self.baud_multiplier

    def fields(self) -> tuple[int, ...]:
        """The reply fields of ReadSysPara, in wire order."""
        return (
            self.status,
            self.system_id,
            self.capacity,
            self.security_level,
            self.address,
            self.packet_size_code,
            self.baud_multiplier,
        )

    @classmethod
    def from_fields(cls, fields: tuple[int | bytes, ...]) -> SystemParameters:
        values = [int(v) if isinstance(v, int) else 0 for v in fields]
        return cls(*values)
