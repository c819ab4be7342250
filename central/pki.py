"""Central's X.509 certificate authority: TLS identities for the broker, central and DR devices.

Every DR device authenticates to the MQTT broker with its own client certificate whose common
name (CN) is its device id; the broker takes the CN as the MQTT username (mosquitto's
``use_identity_as_username``), and the ACL scopes each username to ``dr/<CN>/...``. Central and
the operator dashboard have their own CNs (``central``, ``operator``).

Layout of the CA directory (created by :meth:`CertificateAuthority.load_or_create`)::

    ca.key        the CA's private key (PEM, PKCS#8, mode 0600)
    ca.crt        the self-signed CA certificate (PEM)
    issued.json   serial -> {cn, kind, not_after, revoked_at}: what the CRL is built from

Keys are ECDSA P-256: fast to generate (test fixtures issue a few per test), small, and
understood by every TLS stack the devices run (OpenSSL, mbedTLS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Key files follow the same rules everywhere in the stack (0600, atomic, fsynced, mode checked
# on the opened descriptor): the CA uses the shared helpers and error type.
from dr_contracts.keys import (
    InsecureKeyFileError,
    read_private_file,
    write_private_file,
    write_public_file,
)

__all__ = [
    "CertFiles",
    "CertificateAuthority",
    "InsecureKeyFileError",
    "IssuedCert",
    "PkiError",
    "validate_common_name",
    "write_private_file",
]

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.crt"
ISSUED_INDEX_FILE = "issued.json"

# A CN becomes an MQTT username, a topic level and a line of mosquitto's ACL file: no topic
# wildcards, separators, whitespace or '%' (ACL pattern substitution) may appear in it.
_COMMON_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# Certificates are backdated a little so that a device whose clock lags slightly behind
# central's still accepts a certificate issued a moment ago.
_BACKDATE = dt.timedelta(minutes=5)
CA_VALID_DAYS = 3650
LEAF_VALID_DAYS = 825  # the CA/Browser Forum ceiling; devices are re-provisioned well before
CRL_VALID_DAYS = 30

CertKind = Literal["client", "server"]
Clock = Callable[[], dt.datetime]


class PkiError(Exception):
    """A certificate authority operation failed."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def validate_common_name(common_name: str) -> str:
    """Return ``common_name`` if it is safe as a CN, MQTT username and topic level.

    Raises
    ------
    ValueError
        If it contains anything but letters, digits, ``.``, ``_`` and ``-`` (max 64).
    """
    if not _COMMON_NAME.fullmatch(common_name):
        raise ValueError(
            f"invalid certificate common name {common_name!r}: expected 1-64 characters "
            "[A-Za-z0-9._-], starting with a letter or digit"
        )
    return common_name


@dataclass(frozen=True, slots=True)
class CertFiles:
    """Paths of a certificate and its private key on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """A freshly issued certificate and its private key, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def common_name(self) -> str:
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value)

    @property
    def serial_number(self) -> int:
        return self.certificate.serial_number

    def write(self, directory: Path, *, name: str) -> CertFiles:
        """Write ``<name>.crt`` and ``<name>.key`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        files = CertFiles(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
        write_private_file(files.key, self.key_pem)
        write_public_file(files.cert, self.cert_pem)
        return files


class CertificateAuthority:
    """Central's CA: issues TLS client and server certificates and the revocation list.

    Thread-safe within one process. Use :meth:`load_or_create`, not the constructor.
    """

    def __init__(
        self,
        directory: Path,
        *,
        key: ec.EllipticCurvePrivateKey,
        cert: x509.Certificate,
        clock: Clock = _utcnow,
    ) -> None:
        self.directory = directory
        self._key = key
        self._cert = cert
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        *,
        common_name: str = "DR central CA",
        clock: Clock = _utcnow,
    ) -> CertificateAuthority:
        """Load the CA kept in ``directory``, creating it (key 0600) on first use.

        Raises
        ------
        InsecureKeyFileError
            If ``ca.key`` is readable by group or others.
        PkiError
            If only one of ``ca.key`` / ``ca.crt`` exists, or they do not belong together.
        """
        directory = Path(directory)
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if key_path.exists() != cert_path.exists():
            raise PkiError(
                f"incomplete CA in {directory}: need both {CA_KEY_FILE} and {CA_CERT_FILE}"
            )
        if key_path.exists():
            key = serialization.load_pem_private_key(read_private_file(key_path), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{key_path}: expected an EC private key")
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.public_key() != key.public_key():
                raise PkiError(f"{cert_path} does not match {key_path}")
            return cls(directory, key=key, cert=cert, clock=clock)

        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = clock()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private_file(key_path, _key_pem(key))
        write_public_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key=key, cert=cert, clock=clock)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate (PEM): the trust anchor devices and the broker are given."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_CERT_FILE

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    def issue_client(self, common_name: str, *, valid_days: int = LEAF_VALID_DAYS) -> IssuedCert:
        """Issue a TLS client certificate whose CN is ``common_name`` (a device id)."""
        validate_common_name(common_name)
        return self._issue(common_name, kind="client", sans=(), valid_days=valid_days)

    def issue_server(
        self, hostnames: Sequence[str], *, valid_days: int = LEAF_VALID_DAYS
    ) -> IssuedCert:
        """Issue a TLS server certificate for ``hostnames`` (DNS names or IP addresses)."""
        if isinstance(hostnames, str) or not hostnames:
            raise ValueError("hostnames must be a non-empty sequence of names")
        sans: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(hostnames[0], kind="server", sans=sans, valid_days=valid_days)

    def _issue(
        self,
        common_name: str,
        *,
        kind: CertKind,
        sans: Sequence[x509.GeneralName],
        valid_days: int,
    ) -> IssuedCert:
        if valid_days < 1:
            raise ValueError(f"valid_days must be >= 1, got {valid_days}")
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock()
        usage = (
            ExtendedKeyUsageOID.CLIENT_AUTH
            if kind == "client"
            else (ExtendedKeyUsageOID.SERVER_AUTH)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        cert = builder.sign(self._key, hashes.SHA256())
        with self._lock:
            index = self._load_index()
            index[format(cert.serial_number, "x")] = {
                "cn": common_name,
                "kind": kind,
                "not_after": cert.not_valid_after_utc.isoformat(),
                "revoked_at": None,
            }
            self._save_index(index)
        return IssuedCert(
            key_pem=_key_pem(key), cert_pem=cert.public_bytes(serialization.Encoding.PEM)
        )

    def revoke(self, common_name: str) -> list[int]:
        """Revoke every certificate issued to ``common_name``; return their serial numbers.

        Idempotent: already revoked certificates keep their first revocation time.
        """
        now = self._clock().isoformat()
        revoked: list[int] = []
        with self._lock:
            index = self._load_index()
            for serial, entry in index.items():
                if entry["cn"] == common_name:
                    if entry["revoked_at"] is None:
                        entry["revoked_at"] = now
                    revoked.append(int(serial, 16))
            self._save_index(index)
        return revoked

    def revoked_serials(self) -> dict[int, dt.datetime]:
        """Serial number -> revocation time of every revoked certificate."""
        with self._lock:
            index = self._load_index()
        return {
            int(serial, 16): dt.datetime.fromisoformat(entry["revoked_at"])
            for serial, entry in index.items()
            if entry["revoked_at"] is not None
        }

    def crl_pem(self, *, valid_days: int = CRL_VALID_DAYS) -> bytes:
        """A CRL (PEM) listing every revoked certificate, signed by the CA.

        Regenerate it before it expires: a TLS server given an expired CRL refuses everyone.
        """
        now = self._clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + dt.timedelta(days=valid_days))
        )
        for serial, when in sorted(self.revoked_serials().items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    def write_crl(self, path: Path) -> Path:
        write_public_file(path, self.crl_pem())
        return path

    def _load_index(self) -> dict[str, dict[str, str | None]]:
        path = self.directory / ISSUED_INDEX_FILE
        if not path.exists():
            return {}
        data: dict[str, dict[str, str | None]] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def _save_index(self, index: dict[str, dict[str, str | None]]) -> None:
        write_public_file(
            self.directory / ISSUED_INDEX_FILE,
            json.dumps(index, indent=1, sort_keys=True).encode("utf-8"),
        )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
