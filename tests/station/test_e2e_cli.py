"""Every step from the command line: ``dr-edge agent`` and ``dr-edge session`` against the
running daemon (real processes for the CLI, the world of conftest behind them)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tests.station.conftest import FINGERS, WAIT_S, StationWorld


async def dr_edge(
    *args: str, stdin: str | None = None, token: str | None = None
) -> tuple[int, Any, str]:
    env = {"DR_EDGE_TOKEN": token} if token else {}
    import os

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    async with asyncio.timeout(WAIT_S):
        out, err = await proc.communicate(None if stdin is None else stdin.encode())
    assert proc.returncode is not None
    data = json.loads(out) if out.strip().startswith((b"{", b"[")) else out.decode()
    return proc.returncode, data, err.decode()


async def test_session_subcommands(world: StationWorld) -> None:
    from edge.biometrics.types import FingerPosition as P

    pre = world.prerequest(surname="Ligne-de-commande")
    daemon = await world.start_daemon()
    url = ["--url", daemon.url]
    code, out, err = await dr_edge(
        "session",
        "signin",
        *url,
        "--agent",
        "agent.test",
        "--password-stdin",
        stdin="faux mot de passe\n",
    )
    assert code == 3
    assert "incorrect" in err
    code, out, err = await dr_edge(
        "session",
        "signin",
        *url,
        "--agent",
        "agent.test",
        "--password-stdin",
        stdin="mot de passe de test\n",
    )
    assert code == 0, err
    token = out["token"]
    code, out, err = await dr_edge("session", "start", *url, token=token)
    sid = out["id"]
    code, out, err = await dr_edge("session", "recall", *url, sid, "--number", "12", token=token)
    assert code == 2
    assert "10 caractères" in err
    code, out, err = await dr_edge(
        "session", "recall", *url, sid, "--number", pre.number, token=token
    )
    assert out["step"] == "documents"
    code, out, err = await dr_edge(
        "session", "documents", *url, sid, "--checked", "photo,proof_of_address", token=token
    )
    assert out["step"] == "fingers"
    # The captures themselves through the same API (one CLI call is shown above per step).
    await world.place(FINGERS[P(out["fingers"]["current"]["position"])])
    code, out, err = await dr_edge("session", "capture", *url, sid, token=token)
    assert code == 0, err
    assert out["last_capture"]["quality"] > 0
    out = await world.capture_until(sid)
    assert out["step"] == "summary"
    code, out, err = await dr_edge("session", "confirm", *url, sid, token=token)
    assert code == 0, err
    assert (await world.outcome(out)) == out["request_number"]
