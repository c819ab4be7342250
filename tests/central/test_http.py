"""The HTTP side over a real socket: the citizen page (French), the JSON API, operator auth."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from central.http import build_app
from dr_contracts.acks import Ack
from dr_contracts.identifiers import format_request_number, request_number_for
from dr_contracts.qr import verify_prerequest_qr
from tests.fixtures.central import CentralKit

TOKEN = "operator-token-0123456789"
DEVICE = "dr-91228-01"


@pytest.fixture
async def client(central_kit: CentralKit) -> AsyncIterator[TestClient[object, object]]:
    app = build_app(central_kit.service, operator_token=TOKEN)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def test_citizen_page(central_kit: CentralKit, client: TestClient[object, object]) -> None:
    central_kit.add_device(DEVICE)
    ack = central_kit.service.ingest(central_kit.enrolment(), device_id=DEVICE)
    assert isinstance(ack, Ack)
    printed = format_request_number(ack.request_number)

    page = await (await client.get("/", params={})).text()
    assert 'lang="fr"' in page
    assert "Numéro de demande" in page

    found = await (await client.get("/suivi", params={"numero": printed.lower()})).text()
    assert "Demande reçue" in found
    assert printed in found

    typo = printed[:-1] + ("0" if printed[-1] != "0" else "1")
    mistyped = await (await client.get("/suivi", params={"numero": typo})).text()
    assert 'data-code="number_mistyped"' in mistyped
    assert "erreur de frappe" in mistyped

    unknown = request_number_for(10**9)
    page = await (await client.get("/suivi", params={"numero": unknown})).text()
    assert 'data-code="number_unknown"' in page

    hostile = await (await client.get("/suivi", params={"numero": "<script>x</script>"})).text()
    assert "<script>x" not in hostile


async def test_json_status(central_kit: CentralKit, client: TestClient[object, object]) -> None:
    central_kit.add_device(DEVICE)
    ack = central_kit.service.ingest(central_kit.enrolment(), device_id=DEVICE)
    assert isinstance(ack, Ack)
    response = await client.get(f"/api/v1/requests/{ack.request_number}")
    assert response.status == 200
    body = await response.json()
    assert body["stage"] == "received"
    assert "surname" not in str(body)  # the public view carries no personal data
    typo = (
        ack.request_number[:4]
        + ack.request_number[5]
        + ack.request_number[4]
        + ack.request_number[6:]
    )
    if typo != ack.request_number:
        response = await client.get(f"/api/v1/requests/{typo}")
        assert response.status == 400
        assert (await response.json())["code"] == "number_mistyped"
    response = await client.get(f"/api/v1/requests/{request_number_for(99)}")
    assert response.status == 404


async def test_operator_api(central_kit: CentralKit, client: TestClient[object, object]) -> None:
    form = {
        "surname": "Petit", "given_names": "Jean", "sex": "M", "birth_date": "1975-11-30",
        "birth_place": "Lyon", "nationality": "française", "address_line": "5 rue Neuve",
        "postcode": "69001", "city": "Lyon", "height_cm": 180, "eye_colour": "bleus",
        "reason": "first_request",
    }  # fmt: skip
    assert (await client.post("/api/v1/prerequests", json=form)).status == 401
    created = await client.post("/api/v1/prerequests", json=form, headers=_auth())
    assert created.status == 201
    body = await created.json()
    key = central_kit.service.signing_public_key
    assert verify_prerequest_qr(body["qr"], central_keys=[key]) == body["number"]
    bad = await client.post(
        "/api/v1/prerequests", json={**form, "postcode": "6900"}, headers=_auth()
    )
    assert bad.status == 400
    assert (await bad.json())["field"] == "postcode"
    recap = await client.get(f"/api/v1/prerequests/{body['number']}/recap.pdf", headers=_auth())
    assert recap.status == 200
    assert (await recap.read()).startswith(b"%PDF")
    stamp = await client.post("/api/v1/stamps", json={"amount_cents": 1250}, headers=_auth())
    assert stamp.status == 201
    assert (await stamp.json())["amount_eur"] == "12.50"

    central_kit.add_device(DEVICE)
    ack = central_kit.service.ingest(central_kit.enrolment(), device_id=DEVICE)
    assert isinstance(ack, Ack)
    url = f"/api/v1/requests/{ack.request_number}/stage"
    moved = await client.post(url, json={"stage": "under_review"}, headers=_auth())
    assert moved.status == 200
    backwards = await client.post(url, json={"stage": "received"}, headers=_auth())
    assert backwards.status == 409
    revoked = await client.post(f"/api/v1/devices/{DEVICE}/revoke", headers=_auth())
    assert (await revoked.json())["state"] == "revoked"


async def test_operator_api_disabled_without_token(central_kit: CentralKit) -> None:
    async with TestClient(TestServer(build_app(central_kit.service))) as plain:
        response = await plain.get("/api/v1/devices", headers=_auth())
        assert response.status == 403
