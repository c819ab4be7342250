"""Central's HTTP side (aiohttp): the citizen's tracking page and the JSON API.

Public (no authentication; no personal data, only stages and dates):

- ``GET /`` and ``GET /suivi?numero=...``: the citizen's page, in French;
- ``GET /api/v1/requests/{number}``: the same as JSON (400 ``number_malformed`` or
  ``number_mistyped``, 404 ``number_unknown``);
- ``GET /healthz``.

Operator (``Authorization: Bearer <token>`` from ``http.operator_token_file``; without a
configured token these routes answer 403):

- ``POST /api/v1/prerequests`` (JSON CERFA fields) -> 201 with the number and QR payload;
  ``GET /api/v1/prerequests/{number}``; ``GET /api/v1/prerequests/{number}/recap.pdf``;
- ``POST /api/v1/stamps`` ``{"amount_cents": 2500}``;
- ``POST /api/v1/requests/{number}/stage`` ``{"stage": "under_review", "note": ""}``;
- ``GET /api/v1/devices``; ``POST /api/v1/devices/{id}/revoke``;
- ``GET /api/v1/requests/{number}/report``: the request's data report (central.data_report).

Device RPCs (lookup, stamp check, lease, ingest, handover) go over MQTT (central.mqtt).
The service is synchronous: handlers call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from central.data_report import data_report
from central.models import (
    STAGE_FR,
    FormError,
    PreRequestForm,
    RequestStatus,
    Stage,
    StageTransitionError,
)
from central.recap import render_recap
from central.retention import RetentionPolicy
from central.service import CentralService
from dr_contracts.identifiers import IdentifierError, format_request_number
from dr_contracts.rejections import RejectedError, Rejection, RejectionCode

SERVICE_KEY: Final = web.AppKey("service", CentralService)
TOKEN_KEY: Final = web.AppKey("operator_token", str)
RETENTION_KEY: Final = web.AppKey("retention", RetentionPolicy)
MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REJECTION_STATUS: Final = {
    RejectionCode.NUMBER_UNKNOWN: 404,
    RejectionCode.PREREQUEST_UNKNOWN: 404,
}


def _json(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _rejection(rejection: Rejection) -> web.Response:
    return _json(rejection.to_dict(), status=_REJECTION_STATUS.get(rejection.code, 400))


def _bad_request(message: str, *, field: str | None = None) -> web.Response:
    return _json({"error": message, "field": field}, status=400)


def _operator(handler: Handler) -> Handler:
    async def checked(request: web.Request) -> web.StreamResponse:
        expected = request.app.get(TOKEN_KEY)
        if not expected:
            return _json({"error": "operator API disabled (no token configured)"}, status=403)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _json({"error": "operator token required"}, status=401)
        return await handler(request)

    return checked


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES, actual_size=request.content_length
        )
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


# --- citizen page -----------------------------------------------------------------------

_PAGE: Final = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Suivi de votre demande de carte d'identité</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}
.erreur{{color:#a00}} table{{border-collapse:collapse}} td{{padding:.2em .8em}}</style>
</head><body>
<h1>Suivi de votre demande de carte nationale d'identité</h1>
<form method="get" action="/suivi">
<label for="numero">Numéro de demande (sur votre récépissé)</label><br>
<input id="numero" name="numero" value="{number}" autocomplete="off" size="16"
 placeholder="XXXX-XXXX-XXXX">
<button type="submit">Rechercher</button>
</form>
{result}
</body></html>
"""

_CITIZEN_MESSAGES: Final = {
    RejectionCode.NUMBER_MALFORMED: (
        "Ce numéro n'a pas le bon format : un numéro de demande compte 12 lettres ou chiffres."
    ),
    RejectionCode.NUMBER_MISTYPED: (
        "Ce numéro contient une erreur de frappe : vérifiez-le sur votre récépissé."
    ),
    RejectionCode.NUMBER_UNKNOWN: (
        "Aucune demande ne correspond à ce numéro. Si vous venez de faire votre demande, "
        "réessayez dans quelques heures."
    ),
}


def _status_html(status: RequestStatus) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(STAGE_FR[e.stage])}</td>"
        f"<td>{e.at.strftime('%d/%m/%Y %H:%M')}</td></tr>"
        for e in status.history
    )
    number = html.escape(format_request_number(status.request_number))
    return (
        f'<h2 id="etat">Demande {number} : {html.escape(STAGE_FR[status.stage])}</h2>'
        f"<table>{rows}</table>"
    )


async def citizen_page(request: web.Request) -> web.Response:
    raw = request.query.get("numero", "").strip()[:64]
    result = ""
    if raw:
        service = request.app[SERVICE_KEY]
        answer = await asyncio.to_thread(service.request_status, raw)
        if isinstance(answer, Rejection):
            message = _CITIZEN_MESSAGES.get(answer.code, answer.message_fr)
            result = (
                f'<p class="erreur" id="erreur" data-code="{answer.code.value}">'
                f"{html.escape(message)}</p>"
            )
        else:
            result = _status_html(answer)
    return web.Response(
        text=_PAGE.format(number=html.escape(raw), result=result),
        content_type="text/html",
        charset="utf-8",
    )


# --- JSON API ----------------------------------------------------------------------------


async def request_status(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    answer = await asyncio.to_thread(service.request_status, request.match_info["number"])
    if isinstance(answer, Rejection):
        return _rejection(answer)
    return _json(answer.to_dict())


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


@_operator
async def create_prerequest(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    data = await _body(request)
    try:
        form = PreRequestForm.from_dict(data)
    except FormError as exc:
        return _bad_request(exc.reason, field=exc.field)
    pre = await asyncio.to_thread(service.create_prerequest, form)
    body = pre.to_dict()
    body["qr"] = await asyncio.to_thread(service.prerequest_qr, pre.number)
    return _json(body, status=201)


@_operator
async def show_prerequest(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        pre = await asyncio.to_thread(service.get_prerequest, request.match_info["number"])
    except IdentifierError as exc:
        return _rejection(Rejection(RejectionCode.PREREQUEST_MALFORMED, exc.reason))
    if pre is None:
        return _rejection(Rejection(RejectionCode.PREREQUEST_UNKNOWN))
    return _json(pre.to_dict())


@_operator
async def prerequest_recap(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        pre = await asyncio.to_thread(service.get_prerequest, request.match_info["number"])
    except IdentifierError as exc:
        return _rejection(Rejection(RejectionCode.PREREQUEST_MALFORMED, exc.reason))
    if pre is None:
        return _rejection(Rejection(RejectionCode.PREREQUEST_UNKNOWN))
    qr = service.prerequest_qr(pre.number)
    pdf = await asyncio.to_thread(render_recap, pre, qr_payload=qr)
    return web.Response(body=pdf, content_type="application/pdf")


@_operator
async def create_stamp(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    data = await _body(request)
    amount = data.get("amount_cents", 2500)
    if not isinstance(amount, int) or isinstance(amount, bool):
        return _bad_request("amount_cents must be an integer", field="amount_cents")
    try:
        stamp = await asyncio.to_thread(service.create_stamp, amount_cents=amount)
    except ValueError as exc:
        return _bad_request(str(exc), field="amount_cents")
    return _json(stamp.to_dict(), status=201)


@_operator
async def advance_stage(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    data = await _body(request)
    try:
        stage = Stage(str(data.get("stage")))
    except ValueError:
        return _bad_request(f"stage: one of {', '.join(s.value for s in Stage)}", field="stage")
    note = str(data.get("note", ""))[:200]
    try:
        status = await asyncio.to_thread(
            service.advance_status, request.match_info["number"], stage, note=note
        )
    except RejectedError as exc:
        return _rejection(exc.rejection)
    except StageTransitionError as exc:
        return _json({"error": str(exc), "stage": exc.current.value}, status=409)
    return _json(status.to_dict())


@_operator
async def list_devices(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    devices = await asyncio.to_thread(service.devices)
    return _json([d.to_dict() for d in devices])


@_operator
async def revoke_device(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        device = await asyncio.to_thread(service.revoke_device, request.match_info["device_id"])
    except KeyError:
        return _json({"error": "unknown device"}, status=404)
    return _json(device.to_dict())


@_operator
async def request_report(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    report = await asyncio.to_thread(
        data_report, service, request.match_info["number"], policy=request.app[RETENTION_KEY]
    )
    if isinstance(report, Rejection):
        return _rejection(report)
    return _json(report)


def build_app(
    service: CentralService,
    *,
    operator_token: str | None = None,
    retention: RetentionPolicy | None = None,
) -> web.Application:
    """The aiohttp application (run it with ``web.AppRunner``)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SERVICE_KEY] = service
    app[RETENTION_KEY] = retention or RetentionPolicy()
    if operator_token:
        app[TOKEN_KEY] = operator_token
    app.add_routes(
        [
            web.get("/", citizen_page),
            web.get("/suivi", citizen_page),
            web.get("/healthz", healthz),
            web.get("/api/v1/requests/{number}", request_status),
            web.get("/api/v1/requests/{number}/report", request_report),
            web.post("/api/v1/requests/{number}/stage", advance_stage),
            web.post("/api/v1/prerequests", create_prerequest),
            web.get("/api/v1/prerequests/{number}", show_prerequest),
            web.get("/api/v1/prerequests/{number}/recap.pdf", prerequest_recap),
            web.post("/api/v1/stamps", create_stamp),
            web.get("/api/v1/devices", list_devices),
            web.post("/api/v1/devices/{device_id}/revoke", revoke_device),
        ]
    )
    return app
