"""The operator dashboard's web side (aiohttp), mounted under ``/tableau/``.

- ``GET /tableau/connexion``, ``POST /tableau/connexion``: sign-in (French);
- ``POST /tableau/deconnexion``: sign-out (CSRF token required);
- ``GET /tableau/``: the dashboard page (static JS draws it; no external resource);
- ``GET /tableau/flux``: Server-Sent Events, one ``snapshot`` event per change (coalesced to
  at most one per ``min_push_s``), and at least one every ``refresh_s`` (ages and alerts move
  with time); ``signout`` when the session ends;
- ``GET /tableau/etat.json``: the same snapshot, once.

Everything but the sign-in page needs a session cookie (HttpOnly, SameSite=Strict, Secure
unless configured off). POSTs need a same-origin ``Origin`` (when sent) and a CSRF token.
Responses carry a strict Content-Security-Policy (scripts and styles from /tableau/static only).
"""

from __future__ import annotations

import asyncio
import html
import json
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from central.dashboard.accounts import LockedOutError, LoginGuard, OperatorAccounts
from central.dashboard.hub import FleetHub
from central.dashboard.sessions import Session, SessionStore
from central.dashboard.settings import DashboardSettings
from central.models import STAGE_FR, Stage
from dr_contracts.rejections import MESSAGES_FR, RejectionCode

__all__ = ["DASHBOARD_KEY", "PREFIX", "Dashboard", "build_dashboard_app"]

PREFIX: Final = "/tableau"
SESSION_COOKIE: Final = "dr_tableau_session"
PRE_COOKIE: Final = "dr_tableau_pre"
STATIC_DIR: Final = Path(__file__).parent / "static"
TEMPLATE_DIR: Final = Path(__file__).parent / "templates"
MAX_FIELD_CHARS: Final = 1024

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Operators see codes with a short French meaning; reasons the dashboard itself drops.
_MESSAGE_REASONS_FR: Final = {
    "message_bad_signature": "Message à signature invalide (falsifié ?)",
    "message_unknown_sender": "Message d'un poste inconnu ou révoqué",
    "message_malformed": "Message illisible",
    "message_oversized": "Message trop volumineux",
    "message_wrong_party": "Message mal adressé",
}


@dataclass
class Dashboard:
    """What the routes share: the live model, accounts, sessions, lockouts."""

    hub: FleetHub
    settings: DashboardSettings
    accounts: OperatorAccounts
    sessions: SessionStore
    guard: LoginGuard
    closing: asyncio.Event
    _cached: tuple[int, float, bytes] | None = None  # (model version, when, SSE event)

    def event(self) -> tuple[int, bytes]:
        """The current snapshot as an SSE event, built once for every page that asks
        within ``min_push_s`` of the same model version (many operators, one encoding)."""
        version, now = self.hub.model.version, time.monotonic()
        cached = self._cached
        if cached is None or cached[0] != version or now - cached[1] >= self.settings.min_push_s:
            data = json.dumps(labelled_snapshot(self), ensure_ascii=False, separators=(",", ":"))
            cached = self._cached = (version, now, f"event: snapshot\ndata: {data}\n\n".encode())
        return version, cached[2]


DASHBOARD_KEY: Final = web.AppKey("dashboard", Dashboard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _template(name: str) -> string.Template:
    return string.Template((TEMPLATE_DIR / name).read_text(encoding="utf-8"))


_PAGE: Final = _template("tableau.html")
_LOGIN: Final = _template("connexion.html")


def _rejection_label(kind: str) -> str:
    if kind in _MESSAGE_REASONS_FR:
        return _MESSAGE_REASONS_FR[kind]
    try:
        return MESSAGES_FR[RejectionCode(kind)]
    except ValueError:
        return kind


def labelled_snapshot(dashboard: Dashboard) -> dict[str, Any]:
    """The model's snapshot with the French labels the page shows."""
    snap = dashboard.hub.model.snapshot()
    snap["request_stages"] = [
        {
            "stage": stage.value,
            "label": STAGE_FR[stage],
            "count": snap["request_stages"].get(stage.value, 0),
        }
        for stage in Stage
    ]
    snap["rejections"] = [
        {"kind": kind, "label": _rejection_label(kind), "count": count}
        for kind, count in snap["rejections"].items()
    ]
    return snap


# --- middleware and helpers ----------------------------------------------------------------


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # same-origin, not no-referrer: with no-referrer, form POSTs carry "Origin: null".
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith(f"{PREFIX}/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _dashboard(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD_KEY]


def _set_cookie(response: web.StreamResponse, dash: Dashboard, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=f"{PREFIX}/",
        httponly=True,
        samesite="Strict",
        secure=dash.settings.secure_cookie,
    )


def _session(request: web.Request) -> tuple[str, Session] | None:
    token = request.cookies.get(SESSION_COOKIE)
    session = _dashboard(request).sessions.get(token)
    return None if token is None or session is None else (token, session)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # older browsers omit it on same-origin POSTs; the CSRF token still holds
    return origin == f"{request.scheme}://{request.host}"


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v[:MAX_FIELD_CHARS] for k, v in data.items() if isinstance(v, str)}


def _html(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _login_page(
    dash: Dashboard, pre: str, *, message: str = "", login: str = "", status: int = 200
) -> web.Response:
    body = _LOGIN.substitute(
        prefix=PREFIX,
        login=html.escape(login[:64]),
        csrf=dash.sessions.csrf_token("login", pre),
        message=f'<p class="erreur" id="erreur" role="alert">{html.escape(message)}</p>'
        if message
        else "",
    )
    response = _html(body, status=status)
    _set_cookie(response, dash, PRE_COOKIE, pre)
    return response


# --- routes ----------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.StreamResponse:
    dash = _dashboard(request)
    if _session(request) is not None:
        raise web.HTTPSeeOther(f"{PREFIX}/")
    pre = request.cookies.get(PRE_COOKIE) or dash.sessions.create_pre_token()
    return _login_page(dash, pre)


async def login(request: web.Request) -> web.StreamResponse:
    dash = _dashboard(request)
    form = await _form(request)
    pre = request.cookies.get(PRE_COOKIE)
    if not _same_origin(request) or not dash.sessions.csrf_ok("login", pre, form.get("csrf")):
        fresh = dash.sessions.create_pre_token()
        return _login_page(
            dash, fresh, message="Session expirée : veuillez recommencer.", status=403
        )
    assert pre is not None
    login_name = form.get("identifiant", "").strip().lower()
    password = form.get("mot_de_passe", "")
    address = f"addr:{request.remote or '-'}"
    try:
        dash.guard.check(login_name, address)
    except LockedOutError as exc:
        minutes = max(1, round(exc.retry_after_s / 60))
        return _login_page(
            dash,
            pre,
            message=f"Trop de tentatives échouées : réessayez dans {minutes} min.",
            login=login_name,
            status=429,
        )
    ok = bool(login_name) and await asyncio.to_thread(dash.accounts.check, login_name, password)
    if not ok:
        dash.guard.failed(login_name, address)
        return _login_page(
            dash,
            pre,
            message="Identifiant ou mot de passe incorrect.",
            login=login_name,
            status=401,
        )
    dash.guard.succeeded(login_name)
    token = dash.sessions.create(login_name)
    response = web.HTTPSeeOther(f"{PREFIX}/")
    _set_cookie(response, dash, SESSION_COOKIE, token)
    response.del_cookie(PRE_COOKIE, path=f"{PREFIX}/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    dash = _dashboard(request)
    form = await _form(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not _same_origin(request) or not dash.sessions.csrf_ok("session", token, form.get("csrf")):
        raise web.HTTPForbidden(text="Jeton de sécurité invalide.")
    dash.sessions.end(token)
    response = web.HTTPSeeOther(f"{PREFIX}/connexion")
    response.del_cookie(SESSION_COOKIE, path=f"{PREFIX}/")
    raise response


async def page(request: web.Request) -> web.StreamResponse:
    dash = _dashboard(request)
    found = _session(request)
    if found is None:
        raise web.HTTPSeeOther(f"{PREFIX}/connexion")
    token, session = found
    return _html(
        _PAGE.substitute(
            prefix=PREFIX,
            login=html.escape(session.login),
            csrf=dash.sessions.csrf_token("session", token),
        )
    )


async def state_json(request: web.Request) -> web.StreamResponse:
    if _session(request) is None:
        return web.json_response({"error": "authentification requise"}, status=401)
    return web.json_response(labelled_snapshot(_dashboard(request)))


async def stream(request: web.Request) -> web.StreamResponse:
    dash = _dashboard(request)
    found = _session(request)
    if found is None:
        return web.json_response({"error": "authentification requise"}, status=401)
    token = found[0]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        while not dash.closing.is_set():
            if not dash.sessions.alive(token):
                await response.write(b"event: signout\ndata: {}\n\n")
                break
            seen, event = dash.event()
            sent_at = loop.time()
            await response.write(event)
            await dash.hub.wait_change(seen, timeout_s=dash.settings.refresh_s)
            # Coalesce bursts (a fleet reports many times a second): at most one snapshot per
            # min_push_s per page. A rate limit, not a synchronisation.
            pause = dash.settings.min_push_s - (loop.time() - sent_at)
            if pause > 0 and not dash.closing.is_set():
                await asyncio.sleep(pause)
    except ConnectionResetError:
        pass  # the page went away
    return response


async def _close_streams(app: web.Application) -> None:
    app[DASHBOARD_KEY].closing.set()
    await app[DASHBOARD_KEY].hub.notify()


def build_dashboard_app(
    hub: FleetHub,
    settings: DashboardSettings,
    *,
    accounts: OperatorAccounts | None = None,
    sessions: SessionStore | None = None,
    guard: LoginGuard | None = None,
) -> web.Application:
    """The dashboard sub-application: mount with ``app.add_subapp(PREFIX, sub)``."""
    app = web.Application(middlewares=[_security_headers], client_max_size=16 * 1024)
    app[DASHBOARD_KEY] = Dashboard(
        hub=hub,
        settings=settings,
        accounts=accounts or OperatorAccounts(settings.accounts_file),
        sessions=sessions
        or SessionStore(idle_s=settings.session_idle_s, lifetime_s=settings.session_lifetime_s),
        guard=guard
        or LoginGuard(
            max_failures=settings.max_failures,
            window_s=settings.failure_window_s,
            lockout_s=settings.lockout_s,
        ),
        closing=asyncio.Event(),
    )
    app.on_shutdown.append(_close_streams)
    app.add_routes(
        [
            web.get("/", page),
            web.get("/connexion", login_form),
            web.post("/connexion", login),
            web.post("/deconnexion", logout),
            web.get("/etat.json", state_json),
            web.get("/flux", stream),
            web.static("/static", STATIC_DIR, append_version=False),
        ]
    )
    return app
