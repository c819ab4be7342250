"""Encryption at rest of the station's working data (session state, captures).

The daemon keeps the unfinished session on disk so that a restart can resume it; captures
are biometric data and the pre-request fields are personal data, so both are encrypted with
AES-256-GCM before they reach SQLite. The key is a random 32-byte file in the state directory,
created 0600 on first start and refused when anyone but its owner can read it. Each value is
bound to its table and row id (associated data), so a blob moved to another row fails to open.
After a session ends its captures are deleted with ``secure_delete`` on, and nothing of them
remains once the enrolment is sealed.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class VaultError(Exception):
    """The state key is unusable or a stored value does not open."""


class StateKeyExposedError(VaultError):
    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            f"{path}: the station's state key is readable by group or others "
            f"(mode {stat.filemode(mode)}); run `chmod 600 {path}`"
        )
        self.path = path
        self.mode = mode


class Vault:
    """AES-GCM with one key; ``seal``/``open`` bind each value to a context string."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError(f"state key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> Vault:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise StateKeyExposedError(path, mode) from None
            return cls(path.read_bytes())
        key = secrets.token_bytes(KEY_BYTES)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return cls(key)

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, blob: bytes, *, context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise VaultError(f"stored value for {context} does not open") from exc
