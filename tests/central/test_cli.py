"""``dr-central`` end to end in real processes: init, pre-request, stamp, provisioning,
revocation, status; exit codes and French/English messages."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.enrolment import RequestReason
from dr_contracts.envelope import seal_record
from dr_contracts.keys import CentralRecipientKey, SigningKey, load_ed25519_public_key
from dr_contracts.qr import verify_prerequest_qr
from tests.fixtures.keys import sample_record


def _cli(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "central.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def _json(data_dir: Path, *args: str) -> Any:
    return json.loads(_cli(data_dir, *args, "--json").stdout)


def test_cli_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "central"
    init = _json(data, "init")
    assert len(init["recipient_key_fingerprint"]) == 64
    assert stat.S_IMODE((data / "keys" / "signing.key").stat().st_mode) == 0o600

    pdf = tmp_path / "recap.pdf"
    pre = _json(
        data, "prerequest", "create", "--surname", "Martin", "--given-names", "Léa",
        "--sex", "F", "--birth-date", "1990-02-03", "--birth-place", "Évry",
        "--address", "3 place de l'Hôtel de Ville", "--postcode", "91000",
        "--city", "Évry-Courcouronnes", "--height", "165", "--eyes", "verts",
        "--reason", "loss", "--pdf", str(pdf),
    )  # fmt: skip
    assert pdf.read_bytes().startswith(b"%PDF")
    central_signing = load_ed25519_public_key(data / "keys" / "signing.pub")
    assert verify_prerequest_qr(pre["qr"], central_keys=[central_signing]) == pre["number"]
    assert pre["needs_stamp"] is True
    stamps = _json(data, "stamp", "create", "--count", "2")
    assert len(stamps) == 2
    assert all(len(s["number"]) == 16 for s in stamps)

    bundle = tmp_path / "bundle"
    _json(data, "device", "provision", "dr-91228-03", "--commune", "Évry", "--out", str(bundle))
    for private in ("device-signing.key", "device-handover.key", "tls/client.key"):
        assert stat.S_IMODE((bundle / private).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((bundle / "tls" / "client.crt").read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "dr-91228-03"
    again = _cli(
        data,
        "device",
        "provision",
        "dr-91228-03",
        "--commune",
        "Évry",
        "--out",
        str(tmp_path / "b2"),
        ok=False,
    )
    assert again.returncode == 1
    assert "already registered" in again.stderr

    # The bundle's keys work with central: seal an enrolment as the device would.
    signer = SigningKey.load(bundle / "device-signing.key")
    manifest = (bundle / "device.toml").read_text(encoding="utf-8")
    recipient_fp = manifest.split('recipient_key_fingerprint = "')[1].split('"')[0]
    recipient = CentralRecipientKey.load(
        bundle / "central-recipient.pub", pinned_fingerprint=recipient_fp
    )
    record = sample_record(
        random.Random(1), device_id="dr-91228-03", prerequest_number=pre["number"],
        reason=RequestReason.LOSS, tax_stamp_number=stamps[0]["number"],
    )  # fmt: skip
    with CentralService.open(
        database=f"sqlite://{data / 'central.db'}", key_dir=data / "keys"
    ) as service:
        ack = service.ingest(
            seal_record(record, recipient=recipient, signer=signer), device_id="dr-91228-03"
        )
    assert isinstance(ack, Ack), ack

    shown = _json(data, "status", "show", ack.request_number)
    assert shown["stage"] == "received"
    advanced = _json(data, "status", "advance", ack.request_number, "under_review")
    assert advanced["stage"] == "under_review"
    typo = ack.request_number[:-1] + ("0" if ack.request_number[-1] != "0" else "1")
    mistyped = _cli(data, "status", "show", typo, ok=False)
    assert mistyped.returncode == 1
    assert "number_mistyped" in mistyped.stderr

    revoked = _json(data, "device", "revoke", "dr-91228-03")
    assert revoked["state"] == "revoked"
    assert (data / "ca" / "crl.pem").read_bytes().startswith(b"-----BEGIN X509 CRL")
    listed = _json(data, "device", "list")
    assert [(d["device_id"], d["state"]) for d in listed] == [("dr-91228-03", "revoked")]


def test_cli_errors(tmp_path: Path) -> None:
    data = tmp_path / "central"
    missing = _cli(data, "device", "list", ok=False)
    assert missing.returncode == 2
    assert "dr-central init" in missing.stderr
    _cli(data, "init")
    bad_form = _cli(data, "prerequest", "create", "--surname", "X", ok=False)
    assert bad_form.returncode == 2
    assert "invalid field" in bad_form.stderr
    config = tmp_path / "bad.toml"
    config.write_text("[http]\nport = 'x'\n", encoding="utf-8")
    bad = _cli(data, "--config", str(config), "check-config", ok=False)
    assert bad.returncode == 2
    assert str(config) in bad.stderr
    assert "http.port" in bad.stderr
    assert "problems: []" in _cli(data, "check-config").stdout


def test_serve_answers_http_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import socket
    import urllib.request

    data = tmp_path / "central"
    _cli(data, "init")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "central.cli", "--data-dir", str(data), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DR_CENTRAL_HTTP_PORT": str(port)},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket listens
        assert line.startswith("central: http://127.0.0.1:"), line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as reply:
            assert json.loads(reply.read()) == {"status": "ok"}
        url = f"http://127.0.0.1:{port}/suivi?numero=ABCD"
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert 'data-code="number_malformed"' in reply.read().decode("utf-8")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_serve_reports_a_bad_mqtt_table_as_a_configuration_error(tmp_path: Path) -> None:
    import socket

    data = tmp_path / "central"
    _cli(data, "init")
    config = tmp_path / "central.toml"
    config.write_text("[mqtt]\nport = 99999\n", encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "central.cli", "--config", str(config), "--data-dir", str(data),
         "serve"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "DR_CENTRAL_HTTP_PORT": str(port)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "mqtt.port" in done.stderr
    assert "Traceback" not in done.stderr
