"""Central's key directory, the CERFA form validation, and what ingest logs."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from central.keyring import STORAGE_KEY, CentralKeyring
from central.models import FormError, PreRequestForm
from central.recap import render_recap
from dr_contracts.acks import Ack
from dr_contracts.keys import InsecureKeyFileError
from dr_contracts.qr import verify_prerequest_qr
from dr_contracts.rejections import MESSAGES_FR, RejectionCode
from tests.fixtures.central import CentralKit, sample_form


def test_key_dir_is_created_once_and_refused_when_readable(tmp_path: Path) -> None:
    first = CentralKeyring.create(tmp_path / "keys")
    again = CentralKeyring.create(tmp_path / "keys")
    assert again.recipient.key_id == first.recipient.key_id
    assert again.storage.key == first.storage.key
    (tmp_path / "keys" / STORAGE_KEY).chmod(0o644)
    with pytest.raises(InsecureKeyFileError) as caught:
        CentralKeyring.load(tmp_path / "keys")
    assert caught.value.path == tmp_path / "keys" / STORAGE_KEY


def test_rotation_keeps_old_recipient_keys(tmp_path: Path) -> None:
    first = CentralKeyring.create(tmp_path / "keys")
    rotated = CentralKeyring.rotate_recipient_key(tmp_path / "keys")
    assert rotated.recipient.key_id != first.recipient.key_id
    assert set(rotated.decryption_keys) == {first.recipient.key_id, rotated.recipient.key_id}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surname": ""}, "surname"),
        ({"sex": "X"}, "sex"),
        ({"postcode": "9100"}, "postcode"),
        ({"height_cm": 400}, "height_cm"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"birth_date": "17/05/1988"}, "birth_date"),
        ({"reason": "holiday"}, "reason"),
        ({"shoe_size": 42}, "shoe_size"),
    ],
)
def test_form_errors_name_the_field(change: dict[str, object], field: str) -> None:
    data = sample_form().to_dict()
    data.update(change)
    with pytest.raises(FormError) as caught:
        PreRequestForm.from_dict(data)
    assert caught.value.field == field


def test_form_round_trip() -> None:
    form = sample_form()
    assert PreRequestForm.from_dict(form.to_dict()) == form


def test_every_rejection_has_a_french_message() -> None:
    assert set(MESSAGES_FR) == set(RejectionCode)
    assert all(message.strip() for message in MESSAGES_FR.values())


def test_recap_pdf(central_kit: CentralKit) -> None:
    pre = central_kit.prerequest(surname="Lefèvre", given_names="Chloé Œdipe")
    qr = central_kit.service.prerequest_qr(pre.number)
    pdf = render_recap(pre, qr_payload=qr)
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 2000
    assert verify_prerequest_qr(qr, central_keys=[central_kit.service.signing_public_key]) == (
        pre.number
    )


def test_ingest_logs_no_biometric_data(
    central_kit: CentralKit, caplog: pytest.LogCaptureFixture
) -> None:
    kit = central_kit
    kit.add_device("dr-91228-01")
    record = kit.record(kit.prerequest())
    with caplog.at_level(logging.DEBUG):
        assert isinstance(kit.service.ingest(kit.seal(record), device_id="dr-91228-01"), Ack)
        kit.service.ingest(b"\x00" * 100, device_id="dr-91228-01")
        kit.service.ingest(kit.seal(record)[:-5] + b"xxxxx", device_id="dr-91228-01")
    assert caplog.records, "ingest logs what it does"
    text = "\n".join(
        f"{r.getMessage()} {sorted((k, str(v)) for k, v in vars(r).items())}"
        for r in caplog.records
    )
    for blob in record.biometric_blobs():
        for piece in (blob[40:72], blob[40:72].hex(), base64.b64encode(blob[42:72]).decode()):
            assert str(piece) not in text
