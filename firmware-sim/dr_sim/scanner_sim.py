"""The simulated QR / barcode scanner: ``scan PAYLOAD`` sends one line to the host.

Control commands (besides those of :class:`~dr_sim.serial_device.SerialDevice`)::

    scan PAYLOAD      send PAYLOAD and the line terminator
    raw HEX           send raw bytes (partial lines, binary garbage)
"""

from __future__ import annotations

from pathlib import Path

from dr_sim.control import ControlCommandError
from dr_sim.serial_device import SerialDevice

__all__ = ["EOLS", "ScannerSimulator"]

EOLS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}


class ScannerSimulator(SerialDevice):
    kind = "scanner"

    def __init__(
        self,
        *,
        link: Path,
        control: Path | None = None,
        baudrate: int = 9600,
        pace: bool = False,
        eol: str = "crlf",
    ) -> None:
        super().__init__(link=link, control=control, baudrate=baudrate, pace=pace)
        if eol not in EOLS:
            raise ValueError(f"eol must be one of {', '.join(EOLS)}")
        self.eol = EOLS[eol]
        self.scans = 0

    async def command(self, words: list[str]) -> str:
        name, args = words[0], words[1:]
        if name == "scan":
            if len(args) != 1:
                raise ControlCommandError("usage: scan PAYLOAD (quote it if it has spaces)")
            self.scan(args[0])
            return ""
        return await super().command(words)

    def scan(self, payload: str) -> None:
        self.scans += 1
        self.send(payload.encode("utf-8") + self.eol)

    def help(self) -> str:
        return "scan PAYLOAD | raw HEX | " + super().help()

    def status(self) -> dict[str, object]:
        return {**super().status(), "scans": self.scans}
