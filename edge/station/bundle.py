"""The device bundle written by ``dr-central device provision ID --out DIR``.

Its manifest ``device.toml`` (layout: ``central/provisioning.py``, docs/provisioning.md) names
every file and pins central's public keys by fingerprint::

    [device]   id, commune, signing_key, handover_key
    [tls]      cert, key, ca
    [central]  recipient_key, recipient_key_fingerprint, signing_key, signing_key_fingerprint

Paths in the manifest are relative to the bundle directory. A missing file, a private key file
readable by others, or a public key that does not match its pinned fingerprint is refused with
an error naming the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts.keys import (
    CentralDecryptionKey,
    CentralRecipientKey,
    SigningKey,
    load_ed25519_public_key,
)

MANIFEST = "device.toml"


class BundleError(Exception):
    """The bundle is incomplete or does not belong to this device."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class DeviceBundle:
    directory: Path
    device_id: str
    commune: str
    signing_key: SigningKey
    handover_key: CentralDecryptionKey | None
    recipient: CentralRecipientKey
    central_signing_key: Ed25519PublicKey
    tls_cert: Path
    tls_key: Path
    ca_cert: Path


def load_bundle(directory: Path, *, device_id: str) -> DeviceBundle:
    manifest_path = directory / MANIFEST
    try:
        with manifest_path.open("rb") as fh:
            manifest: dict[str, Any] = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise BundleError(manifest_path, "missing: provision the device first") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(manifest_path, f"not valid TOML: {exc}") from exc

    def value(section: str, key: str) -> str:
        item = manifest.get(section, {}).get(key)
        if not isinstance(item, str) or not item:
            raise BundleError(manifest_path, f"{section}.{key} missing")
        return item

    def path(section: str, key: str) -> Path:
        p = directory / value(section, key)
        if not p.is_file():
            raise BundleError(p, f"missing ({section}.{key})")
        return p

    found = value("device", "id")
    if found != device_id:
        raise BundleError(
            manifest_path, f"bundle is for {found!r}, the configuration says {device_id!r}"
        )
    handover = manifest.get("device", {}).get("handover_key")
    handover_path = directory / handover if isinstance(handover, str) else None
    return DeviceBundle(
        directory=directory,
        device_id=device_id,
        commune=str(manifest["device"].get("commune", "")),
        signing_key=SigningKey.load(path("device", "signing_key")),
        handover_key=CentralDecryptionKey.load(handover_path)
        if handover_path is not None and handover_path.is_file()
        else None,
        recipient=CentralRecipientKey.load(
            path("central", "recipient_key"),
            pinned_fingerprint=value("central", "recipient_key_fingerprint"),
        ),
        central_signing_key=load_ed25519_public_key(
            path("central", "signing_key"),
            pinned_fingerprint=value("central", "signing_key_fingerprint"),
        ),
        tls_cert=path("tls", "cert"),
        tls_key=path("tls", "key"),
        ca_cert=path("tls", "ca"),
    )
