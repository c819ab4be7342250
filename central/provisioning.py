"""Device provisioning: make a device's keys and certificate, register it, write its bundle.

Bundle directory (``dr-central device provision ID --commune NAME --out DIR``; private files
0600, see docs/provisioning.md)::

    device.toml              device id, commune, central's pinned fingerprints, file names
    device-signing.key       the device's Ed25519 key (signs envelopes and link messages)
    device-handover.key      the device's HPKE key (opens templates sealed back at handover)
    tls/client.key           TLS client key (CN = device id), issued by central's CA
    tls/client.crt
    tls/ca.crt               central's CA certificate (trust anchor for the broker)
    central-recipient.pub    central's HPKE public key (seal enrolments to it; pinned)
    central-signing.pub      central's Ed25519 public key (acks, leases, QR codes; pinned)

The device keeps no key that opens its own envelopes: the recipient file is public only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from central.keyring import CentralKeyring
from central.pki import CertificateAuthority
from central.service import CentralService
from dr_contracts.identifiers import DeviceId
from dr_contracts.keys import (
    CentralDecryptionKey,
    SigningKey,
    ed25519_fingerprint,
    save_ed25519_public_key,
    write_private_file,
    write_public_file,
)

BUNDLE_MANIFEST: Final = "device.toml"
DEVICE_SIGNING_KEY: Final = "device-signing.key"
DEVICE_HANDOVER_KEY: Final = "device-handover.key"
TLS_DIR: Final = "tls"
CENTRAL_RECIPIENT_PUB: Final = "central-recipient.pub"
CENTRAL_SIGNING_PUB: Final = "central-signing.pub"


@dataclass(frozen=True, slots=True)
class DeviceBundle:
    directory: Path
    device_id: str
    signing_fingerprint: str
    central_recipient_fingerprint: str
    central_signing_fingerprint: str

    @property
    def manifest(self) -> Path:
        return self.directory / BUNDLE_MANIFEST


def _toml_string(value: str) -> str:
    # JSON string escaping is valid TOML basic-string escaping for these values.
    return json.dumps(value, ensure_ascii=False)


def provision_device(
    service: CentralService,
    ca: CertificateAuthority,
    keys: CentralKeyring,
    *,
    device_id: str,
    commune_name: str,
    out_dir: Path,
    replace: bool = False,
) -> DeviceBundle:
    """Create the device's keys and TLS certificate, register it, and write its bundle.

    The bundle is written before the registration, so a failure leaves no registered device
    without keys; an existing non-empty ``out_dir`` is refused (no overwrite of keys).
    """
    device_id = str(DeviceId.parse(device_id))
    if not commune_name.strip():
        raise ValueError("commune name required")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: refusing to overwrite device keys")
    if not replace and service.device(device_id) is not None:
        raise ValueError(f"device {device_id} is already registered (use --replace)")
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o700)
    signing = SigningKey.generate()
    handover = CentralDecryptionKey.generate()
    signing.save(out_dir / DEVICE_SIGNING_KEY)
    save_ed25519_public_key(out_dir / "device-signing.pub", signing.public_key)
    handover.save(out_dir / DEVICE_HANDOVER_KEY)
    tls = out_dir / TLS_DIR
    tls.mkdir(mode=0o700)
    issued = ca.issue_client(device_id)
    write_private_file(tls / "client.key", issued.key_pem)
    write_public_file(tls / "client.crt", issued.cert_pem)
    write_public_file(tls / "ca.crt", ca.cert_pem)
    keys.recipient_public.save(out_dir / CENTRAL_RECIPIENT_PUB)
    save_ed25519_public_key(out_dir / CENTRAL_SIGNING_PUB, keys.signing.public_key)
    bundle = DeviceBundle(
        directory=out_dir,
        device_id=device_id,
        signing_fingerprint=signing.fingerprint,
        central_recipient_fingerprint=keys.recipient_public.fingerprint,
        central_signing_fingerprint=ed25519_fingerprint(keys.signing.public_key),
    )
    manifest = "\n".join(
        [
            "# DR device bundle, written by dr-central device provision. Keep private files 0600.",
            "[device]",
            f"id = {_toml_string(device_id)}",
            f"commune = {_toml_string(commune_name)}",
            f"signing_key = {_toml_string(DEVICE_SIGNING_KEY)}",
            f"signing_key_fingerprint = {_toml_string(signing.fingerprint)}",
            f"handover_key = {_toml_string(DEVICE_HANDOVER_KEY)}",
            "",
            "[tls]",
            f'cert = "{TLS_DIR}/client.crt"',
            f'key = "{TLS_DIR}/client.key"',
            f'ca = "{TLS_DIR}/ca.crt"',
            "",
            "[central]",
            f"recipient_key = {_toml_string(CENTRAL_RECIPIENT_PUB)}",
            f"recipient_key_fingerprint = {_toml_string(bundle.central_recipient_fingerprint)}",
            f"signing_key = {_toml_string(CENTRAL_SIGNING_PUB)}",
            f"signing_key_fingerprint = {_toml_string(bundle.central_signing_fingerprint)}",
            "",
        ]
    )
    write_public_file(out_dir / BUNDLE_MANIFEST, manifest.encode("utf-8"))
    service.register_device(
        device_id,
        commune_name=commune_name,
        signing_key=signing.public_key,
        handover_key=handover.public_key(),
        replace=replace,
    )
    return bundle
