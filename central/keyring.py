"""Central's own keys, in its key directory (created by ``dr-central init``).

::

    <key dir>/
      signing.key          Ed25519 (PKCS#8 PEM, 0600): signs acks, leases, QR codes
      signing.pub          its public half (given to devices in their bundle)
      recipient.key        current HPKE key (hybrid ML-KEM-768 + X25519, 0600)
      recipient.pub        its public half (devices seal to it, pinned by fingerprint)
      retired/recipient-<key id>.key   previous HPKE keys, kept to open older envelopes
      storage.key          AES-256 key for biometric data at rest (hex, 0600)

Rotation of the HPKE key (:meth:`CentralKeyring.rotate_recipient_key`) moves the current key
to ``retired/`` and makes a new one; envelopes sealed to any key still in the directory open.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dr_contracts.keys import (
    CentralDecryptionKey,
    CentralRecipientKey,
    KeyFormatError,
    SigningKey,
    load_recipient_keyring,
    read_private_file,
    save_ed25519_public_key,
    write_private_file,
)

SIGNING_KEY: Final = "signing.key"
SIGNING_PUB: Final = "signing.pub"
RECIPIENT_KEY: Final = "recipient.key"
RECIPIENT_PUB: Final = "recipient.pub"
RETIRED_DIR: Final = "retired"
STORAGE_KEY: Final = "storage.key"
_NONCE_BYTES: Final = 12


@dataclass(frozen=True, slots=True)
class StorageKey:
    """AES-256-GCM key for data at rest; ``key_id`` = first 16 hex of SHA-256 of the key."""

    key: bytes
    key_id: str

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)``: a fresh random 96-bit nonce per row."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce, AESGCM(self.key).encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, *, aad: bytes) -> bytes:
        return AESGCM(self.key).decrypt(nonce, ciphertext, aad)

    def __repr__(self) -> str:
        return f"StorageKey(key_id={self.key_id!r})"


@dataclass(frozen=True, slots=True)
class CentralKeyring:
    signing: SigningKey
    recipient: CentralDecryptionKey
    decryption_keys: dict[str, CentralDecryptionKey]
    storage: StorageKey

    @property
    def recipient_public(self) -> CentralRecipientKey:
        return self.recipient.public_key()

    @staticmethod
    def create(directory: Path) -> CentralKeyring:
        """Create the missing keys (existing ones are kept), then load everything."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        if not (directory / SIGNING_KEY).exists():
            key = SigningKey.generate()
            key.save(directory / SIGNING_KEY)
            save_ed25519_public_key(directory / SIGNING_PUB, key.public_key)
        if not (directory / RECIPIENT_KEY).exists():
            _new_recipient(directory)
        if not (directory / STORAGE_KEY).exists():
            write_private_file(directory / STORAGE_KEY, os.urandom(32).hex().encode("ascii"))
        return CentralKeyring.load(directory)

    @staticmethod
    def load(directory: Path) -> CentralKeyring:
        """Load the keys; raises :class:`dr_contracts.keys.KeyFileError` naming the file."""
        signing = SigningKey.load(directory / SIGNING_KEY)
        recipient = CentralDecryptionKey.load(directory / RECIPIENT_KEY)
        retired = sorted((directory / RETIRED_DIR).glob("recipient-*.key"))
        keys = load_recipient_keyring([directory / RECIPIENT_KEY, *retired])
        return CentralKeyring(
            signing=signing,
            recipient=recipient,
            decryption_keys=keys,
            storage=_load_storage_key(directory / STORAGE_KEY),
        )

    @staticmethod
    def rotate_recipient_key(directory: Path) -> CentralKeyring:
        """Retire the current HPKE key (kept for opening) and create a new current one."""
        current = CentralDecryptionKey.load(directory / RECIPIENT_KEY)
        retired = directory / RETIRED_DIR
        retired.mkdir(mode=0o700, exist_ok=True)
        current.save(retired / f"recipient-{current.key_id}.key")
        _new_recipient(directory)
        return CentralKeyring.load(directory)


def _new_recipient(directory: Path) -> None:
    key = CentralDecryptionKey.generate()
    key.save(directory / RECIPIENT_KEY)
    key.public_key().save(directory / RECIPIENT_PUB)


def _load_storage_key(path: Path) -> StorageKey:
    text = read_private_file(path).strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise KeyFormatError(path, "storage key must be 64 hex digits") from None
    if len(key) != 32:
        raise KeyFormatError(path, "storage key must be 32 bytes (64 hex digits)")
    return StorageKey(key=key, key_id=hashlib.sha256(key).hexdigest()[:16])
