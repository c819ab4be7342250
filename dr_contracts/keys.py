"""Keys of the enrolment envelope: central's HPKE recipient key and Ed25519 signing keys.

Who holds what (see ``docs/keys.md``):

- central holds one or more :class:`CentralDecryptionKey` (hybrid ML-KEM-768 + X25519 HPKE
  private keys; old ones are kept after a rotation to open what was sealed before it);
- a device holds central's :class:`CentralRecipientKey` (public), *pinned* by its fingerprint
  in the device configuration, and its own :class:`SigningKey` (Ed25519) whose public half is
  registered in central's device registry. A device never holds a key that opens what it sealed.
- central also signs (acknowledgements, leases, QR codes) with a :class:`SigningKey`.

Fingerprint of a public key: SHA-256 of its raw public bytes, lower-case hex (64 characters).
Key id: the first :data:`KEY_ID_HEX_LENGTH` characters of the fingerprint.

File formats (text, PEM armour):

- Ed25519 private key: PKCS#8 PEM (``BEGIN PRIVATE KEY``); public key: SubjectPublicKeyInfo PEM.
- HPKE private key: ``BEGIN DR MLKEM768X25519 PRIVATE KEY`` armouring the 64-byte ML-KEM-768
  seed followed by the 32-byte X25519 private key (no standard PKCS#8 form exists yet for the
  hybrid key); public key: ``BEGIN DR MLKEM768X25519 PUBLIC KEY`` armouring the 1184-byte
  ML-KEM-768 public key followed by the 32-byte X25519 public key.

Private key files are written with mode 0600; loading a private key file that group or others
may read or write raises :class:`InsecureKeyFileError` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from dr_contracts import ed25519_sodium

KEY_ID_HEX_LENGTH = 16
"""A key id is the first 16 hex characters (64 bits) of the key's fingerprint."""

_MLKEM_SEED_LEN = 64
_MLKEM768_PUBLIC_LEN = 1184
_X25519_LEN = 32
_HPKE_PRIVATE_LEN = _MLKEM_SEED_LEN + _X25519_LEN
_HPKE_PUBLIC_LEN = _MLKEM768_PUBLIC_LEN + _X25519_LEN
_HPKE_PRIVATE_LABEL = "DR MLKEM768X25519 PRIVATE KEY"
_HPKE_PUBLIC_LABEL = "DR MLKEM768X25519 PUBLIC KEY"
_MAX_KEY_FILE_BYTES = 64 * 1024
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")

# The one HPKE suite of the project (RFC 9180 + draft-ietf-hpke-pq hybrid KEM).
HPKE_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
HPKE_SUITE_NAME = "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"


# --- errors -------------------------------------------------------------------------------


class KeyFileError(Exception):
    """A key file cannot be used. ``path`` names the file."""

    code: ClassVar[str] = "key_file"

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


class MissingKeyFileError(KeyFileError):
    """The key file does not exist."""

    code = "key_file_missing"

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "key file not found")


class InsecureKeyFileError(KeyFileError):
    """A private key file is readable or writable by group or others (``mode`` has the bits)."""

    code = "key_file_insecure"

    def __init__(self, path: Path | str, mode: int) -> None:
        super().__init__(
            path,
            f"private key file has mode {stat.S_IMODE(mode):04o}; it must not be accessible "
            f"by group or others (chmod 600 {path})",
        )
        self.mode = stat.S_IMODE(mode)


class KeyFormatError(KeyFileError):
    """The file (or bytes) is not a key of the expected kind."""

    code = "key_format"

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(path, f"not a valid key: {reason}")
        self.reason = reason


class FingerprintMismatchError(KeyFileError):
    """A pinned public key does not have the fingerprint the configuration expects."""

    code = "key_fingerprint_mismatch"

    def __init__(self, path: Path | str, *, expected: str, actual: str) -> None:
        super().__init__(
            path, f"public key fingerprint is {actual}, but the configuration pins {expected}"
        )
        self.expected = expected
        self.actual = actual


# --- fingerprints -------------------------------------------------------------------------


def fingerprint(public_bytes: bytes) -> str:
    """SHA-256 of raw public key bytes, lower-case hex."""
    return hashlib.sha256(public_bytes).hexdigest()


def key_id_of(fingerprint_hex: str) -> str:
    """The key id of a fingerprint: its first :data:`KEY_ID_HEX_LENGTH` hex characters."""
    normalized = normalize_fingerprint(fingerprint_hex)
    return normalized[:KEY_ID_HEX_LENGTH]


def normalize_fingerprint(value: str) -> str:
    """Lower-case a fingerprint and drop ``:`` and spaces; raise ``ValueError`` if malformed."""
    cleaned = value.strip().lower().replace(":", "").replace(" ", "")
    if not _FINGERPRINT_RE.fullmatch(cleaned):
        raise ValueError(f"a key fingerprint is 64 hex characters (SHA-256), got {value!r}")
    return cleaned


def ed25519_public_bytes(public_key: ed25519.Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_fingerprint(public_key: ed25519.Ed25519PublicKey) -> str:
    return fingerprint(ed25519_public_bytes(public_key))


def ed25519_key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    return ed25519_fingerprint(public_key)[:KEY_ID_HEX_LENGTH]


# --- file helpers -------------------------------------------------------------------------


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temp file, fsync, rename).

    The file is created 0600 from the start (never briefly world-readable) and replaces any
    existing file only once it is complete on disk.
    """
    _write_atomic(path, data, mode=0o600)


def write_public_file(path: Path, data: bytes) -> None:
    """Write a public (non-secret) file, mode 0644, atomically."""
    _write_atomic(path, data, mode=0o644)


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen nor narrow what we asked for
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)


def read_private_file(path: Path) -> bytes:
    """Read a private key file, refusing it if group or others can access it."""
    return _read_key_file(Path(path), private=True)


def read_public_file(path: Path) -> bytes:
    return _read_key_file(Path(path), private=False)


def _read_key_file(path: Path, *, private: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise MissingKeyFileError(path) from None
    try:
        if private:
            # fstat on the opened descriptor: the mode checked is the mode of what we read.
            mode = os.fstat(fd).st_mode
            if mode & 0o077:
                raise InsecureKeyFileError(path, mode)
        return _read_bounded(fd, path)
    finally:
        os.close(fd)


def _read_bounded(fd: int, path: Path) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, 65536):
        total += len(chunk)
        if total > _MAX_KEY_FILE_BYTES:
            raise KeyFormatError(path, "file too large for a key")
        chunks.append(chunk)
    return b"".join(chunks)


def _armor(label: str, data: bytes) -> bytes:
    b64 = base64.b64encode(data).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (
        "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"
    ).encode("ascii")


def _dearmor(label: str, text: bytes, *, source: Path | str, length: int) -> bytes:
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFormatError(source, "not ASCII text") from None
    begin, end = re.escape(f"-----BEGIN {label}-----"), re.escape(f"-----END {label}-----")
    match = re.search(rf"{begin}\s*([A-Za-z0-9+/=\s]+?)\s*{end}", decoded)
    if match is None:
        raise KeyFormatError(source, f"no '{label}' block")
    try:
        data = base64.b64decode("".join(match.group(1).split()), validate=True)
    except binascii.Error:
        raise KeyFormatError(source, "bad base64") from None
    if len(data) != length:
        raise KeyFormatError(source, f"expected {length} key bytes, found {len(data)}")
    return data


# --- HPKE keys (central) ------------------------------------------------------------------


class CentralRecipientKey:
    """Central's public HPKE key, to which devices seal enrolments."""

    __slots__ = ("_fingerprint", "_raw", "hpke_key")

    def __init__(self, raw: bytes, *, source: Path | str = "<bytes>") -> None:
        if len(raw) != _HPKE_PUBLIC_LEN:
            raise KeyFormatError(source, f"expected {_HPKE_PUBLIC_LEN} public key bytes")
        try:
            mlkem_public = mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_LEN])
            x_public = x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC_LEN:])
        except ValueError as exc:
            raise KeyFormatError(source, str(exc)) from None
        self._raw = bytes(raw)
        self._fingerprint = fingerprint(self._raw)
        self.hpke_key = hpke.MLKEM768X25519PublicKey(mlkem_public, x_public)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def key_id(self) -> str:
        return self._fingerprint[:KEY_ID_HEX_LENGTH]

    def to_bytes(self) -> bytes:
        """Raw public bytes: ML-KEM-768 public key (1184) then X25519 public key (32)."""
        return self._raw

    def to_pem(self) -> bytes:
        return _armor(_HPKE_PUBLIC_LABEL, self._raw)

    @classmethod
    def from_pem(cls, text: bytes, *, source: Path | str = "<bytes>") -> CentralRecipientKey:
        return cls(_dearmor(_HPKE_PUBLIC_LABEL, text, source=source, length=_HPKE_PUBLIC_LEN))

    def save(self, path: Path) -> None:
        write_public_file(path, self.to_pem())

    @classmethod
    def load(cls, path: Path, *, pinned_fingerprint: str) -> CentralRecipientKey:
        """Load central's public key and check it against the fingerprint pinned in config.

        Raises
        ------
        MissingKeyFileError, KeyFormatError, FingerprintMismatchError
        """
        expected = normalize_fingerprint(pinned_fingerprint)
        key = cls.from_pem(read_public_file(path), source=path)
        if key.fingerprint != expected:
            raise FingerprintMismatchError(path, expected=expected, actual=key.fingerprint)
        return key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CentralRecipientKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"CentralRecipientKey(key_id={self.key_id!r})"


class CentralDecryptionKey:
    """Central's private HPKE key (hybrid ML-KEM-768 + X25519). Never leaves central."""

    __slots__ = ("_public", "_seed", "_x25519_raw", "hpke_key")

    def __init__(self, private_raw: bytes, *, source: Path | str = "<bytes>") -> None:
        if len(private_raw) != _HPKE_PRIVATE_LEN:
            raise KeyFormatError(source, f"expected {_HPKE_PRIVATE_LEN} private key bytes")
        try:
            mlkem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(private_raw[:_MLKEM_SEED_LEN])
            x_key = x25519.X25519PrivateKey.from_private_bytes(private_raw[_MLKEM_SEED_LEN:])
        except ValueError as exc:
            raise KeyFormatError(source, str(exc)) from None
        self._seed = bytes(private_raw)
        self.hpke_key = hpke.MLKEM768X25519PrivateKey(mlkem_key, x_key)
        public_raw = mlkem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._public = CentralRecipientKey(public_raw, source=source)

    @classmethod
    def generate(cls) -> CentralDecryptionKey:
        mlkem_key = mlkem.MLKEM768PrivateKey.generate()
        x_key = x25519.X25519PrivateKey.generate()
        return cls(
            mlkem_key.private_bytes_raw()
            + x_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def public_key(self) -> CentralRecipientKey:
        return self._public

    @property
    def fingerprint(self) -> str:
        return self._public.fingerprint

    @property
    def key_id(self) -> str:
        return self._public.key_id

    def to_pem(self) -> bytes:
        return _armor(_HPKE_PRIVATE_LABEL, self._seed)

    @classmethod
    def from_pem(cls, text: bytes, *, source: Path | str = "<bytes>") -> CentralDecryptionKey:
        return cls(
            _dearmor(_HPKE_PRIVATE_LABEL, text, source=source, length=_HPKE_PRIVATE_LEN),
            source=source,
        )

    def save(self, path: Path) -> None:
        """Write the private key, mode 0600."""
        write_private_file(path, self.to_pem())

    @classmethod
    def load(cls, path: Path) -> CentralDecryptionKey:
        """Load a private key file; refuse it if group/others can access it."""
        return cls.from_pem(read_private_file(path), source=path)

    def __repr__(self) -> str:
        return f"CentralDecryptionKey(key_id={self.key_id!r})"


def load_recipient_keyring(paths: Iterable[Path]) -> dict[str, CentralDecryptionKey]:
    """Central's decryption keys by key id: the current one and those kept after rotations.

    Raises ``ValueError`` if two files hold keys with the same key id (a 64-bit collision or
    the same key twice: either way a configuration mistake to fix, not to guess around).
    """
    keyring: dict[str, CentralDecryptionKey] = {}
    for path in paths:
        key = CentralDecryptionKey.load(path)
        if key.key_id in keyring:
            raise ValueError(f"{path}: key id {key.key_id} is already in the keyring")
        keyring[key.key_id] = key
    return keyring


# --- Ed25519 signing keys (devices and central) -------------------------------------------


class SigningKey:
    """An Ed25519 private key with its fingerprint and key id (a device's or central's)."""

    __slots__ = ("_fingerprint", "_signer", "private_key", "public_key")

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self._fingerprint = ed25519_fingerprint(self.public_key)
        # libsodium signs the same bytes faster than OpenSSL (see ed25519_sodium).
        self._signer = ed25519_sodium.signer_for(private_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def key_id(self) -> str:
        return self._fingerprint[:KEY_ID_HEX_LENGTH]

    def sign(self, data: bytes) -> bytes:
        return self._signer.sign(data).signature

    def public_pem(self) -> bytes:
        return public_key_pem(self.public_key)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, text: bytes, *, source: Path | str = "<bytes>") -> SigningKey:
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(source, f"not a PEM private key ({exc})") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyFormatError(source, f"expected an Ed25519 key, found {type(key).__name__}")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the private key (PKCS#8 PEM), mode 0600."""
        write_private_file(path, self.to_pem())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Load a private key file; refuse it if group/others can access it."""
        return cls.from_pem(read_private_file(path), source=path)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


DeviceSigningKey = SigningKey
"""A device's Ed25519 key (signs envelopes and link messages)."""

CentralSigningKey = SigningKey
"""Central's Ed25519 key (signs acknowledgements, leases, QR payloads)."""


def public_key_pem(public_key: ed25519.Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ed25519_public_key_from_pem(
    text: bytes, *, source: Path | str = "<bytes>"
) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(source, f"not a PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyFormatError(source, f"expected an Ed25519 key, found {type(key).__name__}")
    return key


def save_ed25519_public_key(path: Path, public_key: ed25519.Ed25519PublicKey) -> None:
    write_public_file(path, public_key_pem(public_key))


def load_ed25519_public_key(
    path: Path, *, pinned_fingerprint: str | None = None
) -> ed25519.Ed25519PublicKey:
    """Load an Ed25519 public key (SubjectPublicKeyInfo PEM), optionally checking a pin."""
    key = ed25519_public_key_from_pem(read_public_file(path), source=path)
    if pinned_fingerprint is not None:
        expected = normalize_fingerprint(pinned_fingerprint)
        actual = ed25519_fingerprint(key)
        if actual != expected:
            raise FingerprintMismatchError(path, expected=expected, actual=actual)
    return key


def verify_ed25519(public_key: ed25519.Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``data``."""
    try:
        ed25519_sodium.verify(public_key, signature, data)
    except InvalidSignature:
        return False
    return True


__all__ = [
    "HPKE_SUITE",
    "HPKE_SUITE_NAME",
    "KEY_ID_HEX_LENGTH",
    "CentralDecryptionKey",
    "CentralRecipientKey",
    "CentralSigningKey",
    "DeviceSigningKey",
    "FingerprintMismatchError",
    "InsecureKeyFileError",
    "KeyFileError",
    "KeyFormatError",
    "MissingKeyFileError",
    "SigningKey",
    "ed25519_fingerprint",
    "ed25519_key_id",
    "ed25519_public_bytes",
    "ed25519_public_key_from_pem",
    "fingerprint",
    "key_id_of",
    "load_ed25519_public_key",
    "load_recipient_keyring",
    "normalize_fingerprint",
    "public_key_pem",
    "read_private_file",
    "read_public_file",
    "save_ed25519_public_key",
    "verify_ed25519",
    "write_private_file",
    "write_public_file",
]
