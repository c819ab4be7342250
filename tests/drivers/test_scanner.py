"""The QR scanner driver against the simulated scanner, over a real pty."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from dr_sim.scanner_sim import ScannerSimulator

from edge.drivers.errors import DeviceGoneError, ScanRejectedError
from edge.drivers.scanner import QrScanner, ScannerConfig
from tests.fixtures.sim import SimHandle

Sim = SimHandle[ScannerSimulator]


async def _read(scanner: QrScanner) -> str:
    async with asyncio.timeout(5):
        return await scanner.read_payload()


@pytest.mark.parametrize("eol", ["cr", "lf", "crlf"])
async def test_payload_per_line(scanner_sim: Sim, eol: str) -> None:
    scanner_sim.device.eol = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}[eol]
    async with QrScanner(ScannerConfig(port=scanner_sim.port)) as scanner:
        await scanner_sim.control.scan("AB12CD34EF")
        await scanner_sim.control.scan("DR:QR:v1:signature")
        assert await _read(scanner) == "AB12CD34EF"
        assert await _read(scanner) == "DR:QR:v1:signature"


async def test_one_byte_at_a_time(scanner_sim: Sim) -> None:
    await scanner_sim.control.chunk(1)
    async with QrScanner(ScannerConfig(port=scanner_sim.port)) as scanner:
        await scanner_sim.control.scan("0123456789")
        assert await _read(scanner) == "0123456789"


async def test_partial_line_is_not_delivered(scanner_sim: Sim) -> None:
    async with QrScanner(ScannerConfig(port=scanner_sim.port)) as scanner:
        await scanner_sim.control.garbage(b"HALF-A-LI")  # no terminator: never delivered
        await scanner_sim.control.unplug()
        await scanner_sim.control.replug()
        reader = asyncio.create_task(_read(scanner))
        async with asyncio.timeout(5):
            await scanner.wait_reconnects(1)  # a scan before the port is reopened is lost
        await scanner_sim.control.scan("WHOLE")
        # The reconnect dropped the fragment: only the whole line comes out.
        assert await reader == "WHOLE"


async def test_over_long_and_binary_lines_are_rejected(scanner_sim: Sim) -> None:
    config = ScannerConfig(port=scanner_sim.port, max_length=32)
    async with QrScanner(config) as scanner:
        await scanner_sim.control.scan("X" * 100)
        await scanner_sim.control.garbage(b"\x00\x01\x02\xfe\xff\r\n")
        await scanner_sim.control.scan("GOOD")
        with pytest.raises(ScanRejectedError, match="longer than 32") as long_line:
            await _read(scanner)
        assert long_line.value.size == 100
        with pytest.raises(ScanRejectedError, match="binary"):
            await _read(scanner)
        assert await _read(scanner) == "GOOD"


async def test_payloads_iterator_reports_rejections_and_goes_on(scanner_sim: Sim) -> None:
    rejected: list[ScanRejectedError] = []
    async with QrScanner(ScannerConfig(port=scanner_sim.port, max_length=8)) as scanner:
        for payload in ("ONE", "TOO-LONG-PAYLOAD", "TWO"):
            await scanner_sim.control.scan(payload)
        got: list[str] = []
        async with (
            asyncio.timeout(5),
            contextlib.aclosing(scanner.payloads(on_rejected=rejected.append)) as payloads,
        ):
            async for payload in payloads:
                got.append(payload)
                if len(got) == 2:
                    break
    assert got == ["ONE", "TWO"]
    assert [r.size for r in rejected] == [16]


async def test_scanner_gone_for_good(scanner_sim: Sim) -> None:
    config = ScannerConfig(port=scanner_sim.port, reconnect_timeout=0.3)
    async with QrScanner(config) as scanner:
        await scanner_sim.control.unplug()
        with pytest.raises(DeviceGoneError):
            await _read(scanner)
