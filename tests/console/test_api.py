"""The console's JSON API over HTTP (aiohttp server on loopback, fake ports behind it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge.console.app import create_app
from tests.fixtures.station import StationKit, adult

NUMBER = "AB12CD34EF"


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token: str | None = None

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(method, self.base + path, json=body, headers=h) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.read()


@pytest.fixture
async def api(kit: StationKit) -> AsyncIterator[Api]:
    kit.agents.provision("agent1", name="Agent Un", password="correct horse battery")
    app = create_app(kit.station, kit.agents, status=lambda: {"ok": True})
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://{host}:{port}")
    await runner.cleanup()


async def test_requires_sign_in(api: Api) -> None:
    status, body = await api.call("POST", "/api/sessions", {})
    assert status == 401
    assert body["error"]["code"] == "not_signed_in"


async def test_bad_password_and_lockout(api: Api) -> None:
    for _ in range(2):
        status, body = await api.call(
            "POST", "/api/signin", {"agent_id": "agent1", "password": "wrong"}
        )
        assert status == 401
        assert body["error"]["message"] == "Identifiant ou mot de passe incorrect."
    status, body = await api.call("POST", "/api/signin", {"agent_id": "agent1", "password": "x"})
    assert status == 423
    # Locked: even the right password is refused now.
    status, body = await api.call(
        "POST", "/api/signin", {"agent_id": "agent1", "password": "correct horse battery"}
    )
    assert status == 423
    assert body["error"]["code"] == "agent_locked"


async def test_foreign_host_refused(api: Api) -> None:
    status, body = await api.call("GET", "/api/health", headers={"Host": "evil.example:80"})
    assert status == 421
    assert body["error"]["code"] == "bad_host"


async def test_whole_flow_over_http(api: Api, kit: StationKit) -> None:
    status, body = await api.call(
        "POST", "/api/signin", {"agent_id": "agent1", "password": "correct horse battery"}
    )
    assert status == 200
    api.token = body["token"]
    kit.central.prerequests[NUMBER] = adult(NUMBER)
    status, s = await api.call("POST", "/api/sessions", {})
    assert status == 201
    sid = s["id"]
    status, body = await api.call("POST", f"/api/sessions/{sid}/prerequest", {"number": "nope"})
    assert status == 422
    assert body["error"]["code"] == "prerequest_malformed"
    status, s = await api.call("POST", f"/api/sessions/{sid}/prerequest", {"number": NUMBER})
    assert s["step"] == "documents"
    status, s = await api.call(
        "POST", f"/api/sessions/{sid}/documents", {"checked": ["photo", "proof_of_address"]}
    )
    assert s["step"] == "fingers"
    for identity in (11, 11, 22, 22):
        kit.sensor.put(identity)
        status, s = await api.call("POST", f"/api/sessions/{sid}/capture", {})
        assert status == 200
    status, png = await api.call("GET", f"/api/sessions/{sid}/preview.png")
    assert png.startswith(b"\x89PNG")
    status, s = await api.call("POST", f"/api/sessions/{sid}/confirm", {})
    assert s["step"] == "done"
    status, pdf = await api.call("GET", f"/api/sessions/{sid}/receipt.pdf")
    assert pdf.startswith(b"%PDF-")
    status, body = await api.call("POST", "/api/signout", {})
    assert status == 200
    status, body = await api.call("GET", f"/api/sessions/{sid}")
    assert status == 401
