"""The commands a newcomer runs: ``dr-sim sensor|scanner`` and ``dr-edge sensor|scanner``,
as separate processes, ended by signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

DEADLINE = 60  # seconds: generous, for loaded CI machines; not a timing assertion


def _exists(path: Path) -> bool:
    return os.path.lexists(path)  # a dangling symlink counts


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    if process.returncode is None:
        process.send_signal(sig)
    async with asyncio.timeout(DEADLINE):
        await process.communicate()
    assert process.returncode is not None
    return process.returncode


async def _run(*args: str) -> tuple[int, str, str]:
    process = await _start(*args)
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def sim_process(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Path, Path]]:
    device, *extra = request.param
    link, control = tmp_path / device, tmp_path / f"{device}.ctl"
    process = await _start(
        "-m", "dr_sim.cli", device, "--link", str(link), "--control", str(control), *extra
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(DEADLINE):
            banner = (await process.stdout.readline()).decode()
        assert banner.startswith(f"{device}: {link} -> /dev/pts/"), banner
        yield process, link, control
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


@pytest.mark.parametrize("sim_process", [("sensor", "--auto-finger", "7")], indirect=True)
async def test_newcomer_capture(
    sim_process: tuple[asyncio.subprocess.Process, Path, Path], tmp_path: Path
) -> None:
    process, link, control = sim_process
    output = tmp_path / "finger.png"
    code, out, err = await _run(
        "-m", "edge.cli", "sensor", "capture", "--port", str(link), "-o", str(output)
    )
    assert code == 0, err
    assert "Posez le doigt" in err
    with Image.open(output) as picture:
        assert picture.size == (256, 288)
        assert picture.mode == "L"
    code, out, _ = await _run("-m", "edge.cli", "sensor", "info", "--port", str(link))
    assert code == 0
    assert "templates: 0 / 1000" in out
    code, out, _ = await _run("-m", "dr_sim.cli", "ctl", str(control), "status")
    assert code == 0
    status = dict(word.split("=", 1) for word in out.split())
    assert int(status["captures"]) >= 1
    assert await _stop(process) == 0
    assert not _exists(link)
    assert not _exists(control)


@pytest.mark.parametrize("sim_process", [("sensor",)], indirect=True)
async def test_capture_without_finger_exits_with_advice(
    sim_process: tuple[asyncio.subprocess.Process, Path, Path], tmp_path: Path
) -> None:
    process, link, _ = sim_process
    code, _, err = await _run(
        "-m", "edge.cli", "sensor", "capture", "--port", str(link), "-o",
        str(tmp_path / "x.png"), "--wait", "0.2",
    )  # fmt: skip
    assert code == 3
    assert "Capture à refaire" in err
    assert await _stop(process, signal.SIGINT) == 0
    assert not _exists(link)


async def test_capture_on_missing_port_fails_clearly(tmp_path: Path) -> None:
    code, _, err = await _run("-m", "edge.cli", "sensor", "info", "--port", str(tmp_path / "none"))
    assert code == 2
    assert "cannot open" in err


@pytest.mark.parametrize("sim_process", [("scanner",)], indirect=True)
async def test_scanner_listen(sim_process: tuple[asyncio.subprocess.Process, Path, Path]) -> None:
    process, link, control = sim_process
    listener = await _start(
        "-m", "edge.cli", "scanner", "listen", "--port", str(link), "--count", "1"
    )
    try:
        assert listener.stderr is not None
        async with asyncio.timeout(DEADLINE):
            ready = await listener.stderr.readline()  # the port is open: scans will arrive
        assert "En attente" in ready.decode()
        code, _, _ = await _run("-m", "dr_sim.cli", "ctl", str(control), "scan", "AB12CD34EF")
        assert code == 0
        async with asyncio.timeout(DEADLINE):
            out, _ = await listener.communicate()
        assert listener.returncode == 0
        assert out.decode().strip() == "AB12CD34EF"
    finally:
        if listener.returncode is None:
            listener.kill()
            await listener.communicate()
    assert await _stop(process) == 0


async def test_ctl_on_missing_socket(tmp_path: Path) -> None:
    code, _, err = await _run("-m", "dr_sim.cli", "ctl", str(tmp_path / "none"), "status")
    assert code == 1
    assert "dr-sim:" in err
