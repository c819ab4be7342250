"""The agent console: an aiohttp application on the loopback interface, in French.

A one-page UI (``static/``) and the JSON API it uses, which is also what ``dr-edge session``
and the demo script call. Authentication: ``POST /api/signin`` returns a token that every other
call sends as ``Authorization: Bearer <token>`` (a header, never a cookie, so another web page
open in the same browser cannot make requests on the agent's behalf). Requests whose ``Host``
is not a loopback name are refused (DNS rebinding).

Errors are JSON ``{"error": {"code": ..., "message": ...}}`` with the HTTP status of the
station error; ``message`` is French, for the agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.station.agents import AgentDirectory
from edge.station.errors import NotAuthenticatedError, StationError
from edge.station.workflow import Station

log = logging.getLogger(__name__)

STATION_KEY = web.AppKey("station", Station)
AGENTS_KEY = web.AppKey("agents", AgentDirectory)
StatusFn = Callable[[], dict[str, Any]]
STATUS_KEY: web.AppKey[StatusFn] = web.AppKey("status")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, **details: object) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, **details}}, status=status
    )


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    host = (
        request.host.rsplit(":", 1)[0]
        if not request.host.startswith("[")
        else request.host.split("]")[0] + "]"
    )
    if host not in _LOOPBACK_HOSTS:
        return _error(421, "bad_host", "Console accessible uniquement en local.")
    try:
        response = await handler(request)
    except StationError as exc:
        details = {k: v for k, v in exc.details.items() if isinstance(v, str | int | list)}
        response = _error(exc.http_status, exc.code, exc.message, **details)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console request %s %s failed", request.method, request.path)
        response = _error(
            500,
            "internal_error",
            "Erreur interne du poste : réessayez, puis contactez l'assistance.",
        )
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _agent(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if not token:
        raise NotAuthenticatedError("not_signed_in", "Connectez-vous pour continuer.")
    return request.app[AGENTS_KEY].authenticate(token)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise StationError("bad_request", "Requête illisible (JSON attendu).") from exc
    if not isinstance(data, dict):
        raise StationError("bad_request", "Requête illisible (objet JSON attendu).")
    return data


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 4096:
        raise StationError("bad_request", f"Champ {key} invalide.")
    return value


# -- handlers --------------------------------------------------------------------------------
async def index(request: web.Request) -> web.StreamResponse:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    suffix = Path(name).suffix
    if suffix not in types or "/" in name:
        raise web.HTTPNotFound()
    try:
        body = _static(name)
    except FileNotFoundError as exc:
        raise web.HTTPNotFound() from exc
    return web.Response(body=body, content_type=types[suffix], charset="utf-8")


def _static(name: str) -> bytes:
    return resources.files("edge.console").joinpath("static", name).read_bytes()


async def health(request: web.Request) -> web.StreamResponse:
    station = request.app[STATION_KEY]
    return web.json_response({"ok": True, "device_id": station.device_id})


async def signin(request: web.Request) -> web.StreamResponse:
    data = await _body(request)
    agent_id, password = _str(data, "agent_id") or "", _str(data, "password") or ""
    agents = request.app[AGENTS_KEY]
    token = agents.sign_in(agent_id.strip().lower(), password)
    return web.json_response(
        {"token": token, "agent_id": agent_id, "name": agents.display_name(agent_id)}
    )


async def signout(request: web.Request) -> web.StreamResponse:
    _agent(request)
    token = request.headers["Authorization"].removeprefix("Bearer ").strip()
    request.app[AGENTS_KEY].sign_out(token)
    return web.json_response({"ok": True})


async def status_handler(request: web.Request) -> web.StreamResponse:
    _agent(request)
    return web.json_response(request.app[STATUS_KEY]())


async def list_sessions(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response({"sessions": request.app[STATION_KEY].open_sessions(agent)})


async def start_session(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response(await request.app[STATION_KEY].start(agent), status=201)


async def get_session(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response(request.app[STATION_KEY].get(request.match_info["sid"], agent))


async def prerequest(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    data = await _body(request)
    station = request.app[STATION_KEY]
    sid = request.match_info["sid"]
    offline = data.get("offline_details")
    if offline is not None and not (
        isinstance(offline, dict) and all(isinstance(v, str) for v in offline.values())
    ):
        raise StationError("bad_request", "Champ offline_details invalide.")
    if data.get("from_scanner"):
        timeout = float(data.get("timeout", 30))
        view = await station.recall_from_scanner(
            sid, agent, wait=min(timeout, 120.0), offline_details=offline
        )
    else:
        view = await station.recall(
            sid, agent, number=_str(data, "number"), qr=_str(data, "qr"), offline_details=offline
        )
    return web.json_response(view)


async def documents(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    data = await _body(request)
    checked = data.get("checked", [])
    if not isinstance(checked, list) or not all(isinstance(c, str) for c in checked):
        raise StationError("bad_request", "Champ checked invalide.")
    erase_images = data.get("erase_images", False)
    if not isinstance(erase_images, bool):
        raise StationError("bad_request", "Champ erase_images invalide.")
    view = await request.app[STATION_KEY].documents(
        request.match_info["sid"],
        agent,
        checked=checked,
        stamp=_str(data, "stamp"),
        erase_images=erase_images,
    )
    return web.json_response(view)


async def capture(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response(
        await request.app[STATION_KEY].capture(request.match_info["sid"], agent)
    )


async def exception(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    data = await _body(request)
    view = await request.app[STATION_KEY].declare_exception(
        request.match_info["sid"], agent, code=_str(data, "code") or ""
    )
    return web.json_response(view)


async def redo(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response(
        await request.app[STATION_KEY].redo_fingers(request.match_info["sid"], agent)
    )


async def confirm(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response(
        await request.app[STATION_KEY].confirm(request.match_info["sid"], agent)
    )


async def abort(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    return web.json_response(await request.app[STATION_KEY].abort(request.match_info["sid"], agent))


async def preview(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    station = request.app[STATION_KEY]
    sid = request.match_info["sid"]
    if sid != "handover":
        station.get(sid, agent)  # ownership check
    png = station.preview(sid)
    if png is None:
        raise web.HTTPNotFound()
    return web.Response(body=png, content_type="image/png")


async def receipt(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    view = request.app[STATION_KEY].get(request.match_info["sid"], agent)
    if not view.get("receipt"):
        raise web.HTTPNotFound()
    body = await asyncio.to_thread(Path(view["receipt"]).read_bytes)
    return web.Response(body=body, content_type="application/pdf")


async def handover(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    data = await _body(request)
    result = await request.app[STATION_KEY].handover(
        agent, request_number=_str(data, "request_number") or ""
    )
    return web.json_response(result)


def create_app(
    station: Station, agents: AgentDirectory, *, status: Callable[[], dict[str, Any]]
) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=256 * 1024)
    app[STATION_KEY] = station
    app[AGENTS_KEY] = agents
    app[STATUS_KEY] = status
    r = app.router
    r.add_get("/", index)
    r.add_get("/static/{name}", static)
    r.add_get("/api/health", health)
    r.add_post("/api/signin", signin)
    r.add_post("/api/signout", signout)
    r.add_get("/api/status", status_handler)
    r.add_get("/api/sessions", list_sessions)
    r.add_post("/api/sessions", start_session)
    r.add_get("/api/sessions/{sid}", get_session)
    r.add_post("/api/sessions/{sid}/prerequest", prerequest)
    r.add_post("/api/sessions/{sid}/documents", documents)
    r.add_post("/api/sessions/{sid}/capture", capture)
    r.add_post("/api/sessions/{sid}/exception", exception)
    r.add_post("/api/sessions/{sid}/redo", redo)
    r.add_post("/api/sessions/{sid}/confirm", confirm)
    r.add_post("/api/sessions/{sid}/abort", abort)
    r.add_get("/api/sessions/{sid}/preview.png", preview)
    r.add_get("/api/sessions/{sid}/receipt.pdf", receipt)
    r.add_post("/api/handover", handover)
    return app
