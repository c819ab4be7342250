"""Operator accounts: scrypt-hashed passwords in a JSON file, and lockout after failures.

File layout (written 0600, atomically)::

    {"version": 1,
     "operators": {"<login>": {"salt": "<b64>", "hash": "<b64>", "n": 16384, "r": 8, "p": 1}}}

Passwords never leave this module: only the login and a yes/no come out. A login attempt on
an unknown account costs the same scrypt work as on a real one, so timing does not tell
which logins exist.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from dr_contracts.keys import write_private_file

__all__ = [
    "AccountError",
    "AccountsFileError",
    "LockedOutError",
    "LoginGuard",
    "OperatorAccounts",
    "PasswordHash",
    "validate_login",
]

SCRYPT_N: Final = 1 << 14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
HASH_BYTES: Final = 32
SALT_BYTES: Final = 16
MIN_PASSWORD_CHARS: Final = 12
_LOGIN: Final = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")


class AccountError(ValueError):
    """A refused account operation (bad login name, weak password...)."""


class AccountsFileError(AccountError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class LockedOutError(Exception):
    """Too many failed sign-ins: refused until ``retry_after_s`` has passed."""

    def __init__(self, login: str, retry_after_s: float) -> None:
        super().__init__(f"sign-in for {login!r} locked for {retry_after_s:.0f} s")
        self.login = login
        self.retry_after_s = retry_after_s


def validate_login(login: str) -> str:
    if not _LOGIN.fullmatch(login):
        raise AccountError("login: 2-64 characters a-z 0-9 . _ - (lower case)")
    return login


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class PasswordHash:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def _kdf(self) -> Scrypt:
        return Scrypt(salt=self.salt, length=len(self.digest), n=self.n, r=self.r, p=self.p)

    @classmethod
    def create(cls, password: str) -> PasswordHash:
        salt = os.urandom(SALT_BYTES)
        kdf = Scrypt(salt=salt, length=HASH_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        return cls(salt=salt, digest=kdf.derive(password.encode("utf-8")))

    def verify(self, password: str) -> bool:
        try:
            self._kdf().verify(password.encode("utf-8"), self.digest)
        except InvalidKey:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "salt": _b64(self.salt),
            "hash": _b64(self.digest),
            "n": self.n,
            "r": self.r,
            "p": self.p,
        }

    @classmethod
    def from_dict(cls, data: object) -> PasswordHash:
        if not isinstance(data, dict):
            raise TypeError("expected an object")
        n, r, p = (_positive(data.get(k), k) for k in ("n", "r", "p"))
        if n < SCRYPT_N or n & (n - 1):
            raise ValueError(f"scrypt n must be a power of two >= {SCRYPT_N}")
        salt = base64.b64decode(str(data.get("salt", "")), validate=True)
        digest = base64.b64decode(str(data.get("hash", "")), validate=True)
        if len(salt) < SALT_BYTES or len(digest) < HASH_BYTES:
            raise ValueError("salt or hash too short")
        return cls(salt=salt, digest=digest, n=n, r=r, p=p)


def _positive(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer")
    return value


# Verified against when the login is unknown: same cost, always false.
_DUMMY: Final = PasswordHash(salt=b"\0" * SALT_BYTES, digest=b"\0" * HASH_BYTES)


def _parse_accounts(data: Any) -> dict[str, PasswordHash]:
    operators = data["operators"]
    if data.get("version") != 1 or not isinstance(operators, dict):
        raise ValueError("expected version 1 and an 'operators' object")
    return {validate_login(k): PasswordHash.from_dict(v) for k, v in operators.items()}


class OperatorAccounts:
    """The accounts file. ``check`` is CPU-heavy (scrypt): call it from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._accounts: dict[str, PasswordHash] = {}
        self._mtime_ns: int | None = None
        self.reload()

    def reload(self) -> None:
        """Read the file again (missing file = no accounts: nobody can sign in)."""
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._accounts, self._mtime_ns = {}, None
            return
        if stat.st_mode & 0o077:
            raise AccountsFileError(self.path, f"mode {stat.st_mode & 0o777:o}: must be 0600")
        try:
            accounts = _parse_accounts(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise AccountsFileError(self.path, f"malformed ({exc})") from None
        self._accounts, self._mtime_ns = accounts, stat.st_mtime_ns

    def _reload_if_changed(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime_ns:
            self.reload()

    @property
    def logins(self) -> list[str]:
        return sorted(self._accounts)

    def set_password(self, login: str, password: str) -> None:
        """Create the account or change its password, and save the file."""
        validate_login(login)
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"password: at least {MIN_PASSWORD_CHARS} characters")
        self._reload_if_changed()
        self._accounts[login] = PasswordHash.create(password)
        self._save()

    def remove(self, login: str) -> bool:
        self._reload_if_changed()
        if self._accounts.pop(login, None) is None:
            return False
        self._save()
        return True

    def _save(self) -> None:
        data = {
            "version": 1,
            "operators": {k: v.to_dict() for k, v in sorted(self._accounts.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(self.path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
        self._mtime_ns = self.path.stat().st_mtime_ns

    def check(self, login: str, password: str) -> bool:
        """True when ``password`` is ``login``'s (accounts added meanwhile are seen)."""
        self._reload_if_changed()
        stored = self._accounts.get(login)
        ok = (stored or _DUMMY).verify(password)
        return ok and stored is not None


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginGuard:
    """Locks a login (and, separately, a client address) after repeated failures.

    ``max_failures`` failures within ``window_s`` lock it for ``lockout_s``; a success clears
    the login's record. Counting per address too stops one client trying many logins.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_s: float = 900.0,
        lockout_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0 or lockout_s <= 0:
            raise ValueError("max_failures, window_s and lockout_s must be positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._clock = clock
        self._records: dict[str, _Failures] = {}

    def check(self, *keys: str) -> None:
        """Raise :class:`LockedOutError` if any of ``keys`` is locked now."""
        now = self._clock()
        for key in keys:
            record = self._records.get(key)
            if record is not None and record.locked_until > now:
                raise LockedOutError(key, record.locked_until - now)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            record = self._records.setdefault(key, _Failures())
            record.times = [t for t in record.times if t > now - self.window_s] + [now]
            if len(record.times) >= self.max_failures:
                record.locked_until = now + self.lockout_s
                record.times.clear()
        if len(self._records) > 100_000:  # bounded memory under a spray of logins
            self._records = {
                k: r for k, r in self._records.items() if r.locked_until > now or r.times
            }

    def succeeded(self, login: str) -> None:
        self._records.pop(login, None)
