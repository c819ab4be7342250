"""The dashboard's web side over real HTTP (aiohttp server and client): sign-in, CSRF,
lockout, cookies, headers, JSON state and the SSE stream. The model is fed directly here;
tests/dashboard/test_live.py feeds it from the real broker."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from aiohttp import ClientResponse, CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from central.dashboard import PREFIX, FleetHub, FleetModel, build_dashboard_app
from central.dashboard.accounts import OperatorAccounts
from central.dashboard.sessions import SessionStore
from central.dashboard.settings import DashboardSettings
from dr_contracts.messages import DeviceState

LOGIN = "alice"
PASSWORD = "correct horse battery"
WAIT_S = 30.0


@pytest.fixture
def hub() -> FleetHub:
    return FleetHub(FleetModel())


async def _client(
    hub: FleetHub, tmp_path: Path, **options: object
) -> TestClient[web.Request, web.Application]:
    accounts = OperatorAccounts(tmp_path / "operators.json")
    if not accounts.logins:
        accounts.set_password(LOGIN, PASSWORD)
    settings = DashboardSettings(
        accounts_file=tmp_path / "operators.json",
        secure_cookie=bool(options.pop("secure_cookie", False)),
        max_failures=3,
        refresh_s=30.0,
    )
    app = web.Application()
    app.add_subapp(PREFIX, build_dashboard_app(hub, settings, accounts=accounts))
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    return client


@pytest.fixture
async def client(
    hub: FleetHub, tmp_path: Path
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await _client(hub, tmp_path)
    try:
        yield client
    finally:
        await client.close()


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match is not None, "no CSRF field in the page"
    return match[1]


async def _login(
    client: TestClient[web.Request, web.Application], password: str = PASSWORD
) -> ClientResponse:
    form = await client.get(f"{PREFIX}/connexion")
    csrf = _csrf(await form.text())
    return await client.post(
        f"{PREFIX}/connexion",
        data={"identifiant": LOGIN, "mot_de_passe": password, "csrf": csrf},
        allow_redirects=False,
    )


def _cookie(response: ClientResponse, name: str) -> SimpleCookie:
    for header in response.headers.getall("Set-Cookie", []):
        if header.startswith(f"{name}="):
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            return cookie
    raise AssertionError(f"no {name} cookie set")


async def test_everything_but_sign_in_needs_a_session(
    client: TestClient[web.Request, web.Application],
) -> None:
    page = await client.get(f"{PREFIX}/", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == f"{PREFIX}/connexion"
    assert (await client.get(f"{PREFIX}/etat.json")).status == 401
    assert (await client.get(f"{PREFIX}/flux")).status == 401
    form = await client.get(f"{PREFIX}/connexion")
    assert form.status == 200
    assert "Se connecter" in await form.text()
    assert "script-src 'self'" in form.headers["Content-Security-Policy"]


async def test_sign_in_sets_a_strict_httponly_session_cookie(
    client: TestClient[web.Request, web.Application],
) -> None:
    answer = await _login(client)
    assert answer.status == 303
    cookie = _cookie(answer, "dr_tableau_session")["dr_tableau_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == f"{PREFIX}/"
    page = await client.get(f"{PREFIX}/")
    assert page.status == 200
    text = await page.text()
    assert LOGIN in text
    assert "tableau.js" in text
    assert page.headers["Cache-Control"] == "no-store"


async def test_secure_flag_when_configured(hub: FleetHub, tmp_path: Path) -> None:
    client = await _client(hub, tmp_path, secure_cookie=True)
    try:
        # Over plain HTTP the client then withholds the cookie: only the flag is checked.
        form = await client.get(f"{PREFIX}/connexion")
        assert _cookie(form, "dr_tableau_pre")["dr_tableau_pre"]["secure"]
    finally:
        await client.close()


async def test_wrong_password_then_lockout(
    client: TestClient[web.Request, web.Application],
) -> None:
    for _ in range(3):
        answer = await _login(client, password="not the password")
        assert answer.status == 401
        assert "Identifiant ou mot de passe incorrect" in await answer.text()
    locked = await _login(client)  # even the right password, while locked
    assert locked.status == 429
    assert "Trop de tentatives" in await locked.text()
    assert (await client.get(f"{PREFIX}/etat.json")).status == 401


async def test_sign_in_post_without_token_or_from_another_origin_is_refused(
    client: TestClient[web.Request, web.Application],
) -> None:
    await client.get(f"{PREFIX}/connexion")
    no_token = await client.post(
        f"{PREFIX}/connexion",
        data={"identifiant": LOGIN, "mot_de_passe": PASSWORD},
        allow_redirects=False,
    )
    assert no_token.status == 403
    form = await client.get(f"{PREFIX}/connexion")
    cross = await client.post(
        f"{PREFIX}/connexion",
        data={"identifiant": LOGIN, "mot_de_passe": PASSWORD, "csrf": _csrf(await form.text())},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert cross.status == 403
    assert (await client.get(f"{PREFIX}/etat.json")).status == 401


async def test_sign_out_needs_the_session_csrf_token(
    client: TestClient[web.Request, web.Application],
) -> None:
    await _login(client)
    page = await (await client.get(f"{PREFIX}/")).text()
    refused = await client.post(
        f"{PREFIX}/deconnexion", data={"csrf": "0" * 64}, allow_redirects=False
    )
    assert refused.status == 403
    assert (await client.get(f"{PREFIX}/etat.json")).status == 200
    done = await client.post(
        f"{PREFIX}/deconnexion", data={"csrf": _csrf(page)}, allow_redirects=False
    )
    assert done.status == 303
    assert (await client.get(f"{PREFIX}/etat.json")).status == 401


async def test_state_json_has_french_labels(
    hub: FleetHub, client: TestClient[web.Request, web.Application]
) -> None:
    hub.model.set_request_stages({"received": 4})
    hub.model.on_rejection("dr-91228-01", "bad_signature")
    await _login(client)
    state = await (await client.get(f"{PREFIX}/etat.json")).json()
    stages = {s["stage"]: (s["label"], s["count"]) for s in state["request_stages"]}
    assert stages["received"] == ("Demande reçue", 4)
    assert stages["handed_over"][1] == 0
    assert state["rejections"][0]["kind"] == "bad_signature"
    assert "signature" in state["rejections"][0]["label"]


async def _event(response: ClientResponse) -> tuple[str, dict[str, object]]:
    name, data = "", ""
    async with asyncio.timeout(WAIT_S):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif not line and name:
                return name, json.loads(data)


async def test_stream_pushes_a_snapshot_on_each_change(
    hub: FleetHub, client: TestClient[web.Request, web.Application]
) -> None:
    await _login(client)
    response = await client.get(f"{PREFIX}/flux")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    name, first = await _event(response)
    assert name == "snapshot"
    assert first["devices"] == []
    state = DeviceState(status="online", session=b"s" * 16, version="2.0")
    hub.model.on_state("dr-91228-01", state, sent_at_ms=1)
    await hub.notify()
    name, second = await _event(response)
    devices = second["devices"]
    assert isinstance(devices, list)
    assert [(d["id"], d["status"]) for d in devices] == [("dr-91228-01", "online")]
    response.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_stream_ends_with_signout_when_the_session_expires(
    hub: FleetHub, tmp_path: Path
) -> None:
    accounts = OperatorAccounts(tmp_path / "operators.json")
    accounts.set_password(LOGIN, PASSWORD)
    clock = _Clock()
    settings = DashboardSettings(
        accounts_file=tmp_path / "operators.json",
        secure_cookie=False,
        refresh_s=0.05,
        min_push_s=0.01,
    )
    app = web.Application()
    sessions = SessionStore(idle_s=60, clock=clock)
    app.add_subapp(PREFIX, build_dashboard_app(hub, settings, accounts=accounts, sessions=sessions))
    client = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    try:
        await _login(client)
        response = await client.get(f"{PREFIX}/flux")
        assert (await _event(response))[0] == "snapshot"
        clock.now += 61  # idle too long: the next periodic refresh notices
        while (event := await _event(response))[0] == "snapshot":
            pass
        assert event[0] == "signout"
        assert (await client.get(f"{PREFIX}/etat.json")).status == 401
    finally:
        await client.close()


async def test_typed_login_is_echoed_escaped(
    client: TestClient[web.Request, web.Application],
) -> None:
    form = await client.get(f"{PREFIX}/connexion")
    answer = await client.post(
        f"{PREFIX}/connexion",
        data={"identifiant": '"><b>x', "mot_de_passe": "y", "csrf": _csrf(await form.text())},
    )
    assert answer.status == 401
    text = await answer.text()
    assert "<b>x" not in text
    assert 'value="&quot;&gt;&lt;b&gt;x"' in text
