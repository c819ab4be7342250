"""central.pki: a real CA issuing real certificates, checked with cryptography and OpenSSL."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central.pki import CertificateAuthority, InsecureKeyFileError, PkiError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_then_load_keeps_the_same_ca(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path / "ca")
    second = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert first.cert_pem == second.cert_pem
    assert _mode(tmp_path / "ca" / "ca.key") == 0o600


def test_client_certificate_has_the_device_id_as_cn_and_verifies(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    issued = ca.issue_client("dr-91228-01")
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dr-91228-01"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    cert.verify_directly_issued_by(ca.certificate)
    files = issued.write(tmp_path / "out", name="device")
    assert _mode(files.key) == 0o600
    # OpenSSL (through the ssl module) accepts the pair and the CA as a trust anchor.
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    context.load_cert_chain(str(files.cert), str(files.key))


def test_server_certificate_names_hosts_and_ips(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    cert = ca.issue_server(["localhost", "127.0.0.1"]).certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.parametrize("bad", ["", "dr/1", "dr+1", "#", "a b", "dr-%u", "x" * 65, "-lead"])
def test_unsafe_common_names_are_refused(tmp_path: Path, bad: str) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    with pytest.raises(ValueError, match="common name"):
        ca.issue_client(bad)


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    with pytest.raises(InsecureKeyFileError) as info:
        CertificateAuthority.load_or_create(tmp_path / "ca")
    assert info.value.path == tmp_path / "ca" / "ca.key"


def test_incomplete_ca_directory_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "ca.crt").unlink()
    with pytest.raises(PkiError, match="incomplete"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


def test_revocation_lists_every_certificate_of_the_name(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    a1, a2, b = ca.issue_client("dr-1"), ca.issue_client("dr-1"), ca.issue_client("dr-2")
    assert sorted(ca.revoke("dr-1")) == sorted([a1.serial_number, a2.serial_number])
    crl = x509.load_pem_x509_crl(ca.crl_pem())
    ca_key = ca.certificate.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    revoked = {entry.serial_number for entry in crl}
    assert revoked == {a1.serial_number, a2.serial_number}
    assert b.serial_number not in revoked
    # The index survives a reload of the CA.
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert set(again.revoked_serials()) == revoked
