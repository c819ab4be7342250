"""Agent accounts of the mairie: scrypt password hashes, lockout, sign-in tokens, audit.

Passwords are hashed with scrypt (``cryptography``), a random 16-byte salt per agent, and the
parameters stored beside the hash so they can be raised later. After ``lockout_failures``
consecutive failures an account is locked for ``lockout_minutes``; a sign-in during the lock
is refused without checking the password. Unknown agents cost the same scrypt work as known
ones. A successful sign-in returns a random token; only its SHA-256 is stored. Every sign-in,
failure, lock and sign-out goes to the audit log (never the password).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from dr_contracts.audit import AuditLog
from edge.station.errors import AgentLockedError, NotAuthenticatedError, SignInRefusedError
from edge.station.store import StationStore

AGENT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD_CHARS = 10
SCRYPT_PARAMS: dict[str, int] = {"n": 2**14, "r": 8, "p": 1}
_DUMMY_SALT = bytes(16)


def hash_password(password: str, *, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode())


class AgentDirectory:
    def __init__(
        self,
        store: StationStore,
        audit: AuditLog,
        *,
        lockout_failures: int,
        lockout: timedelta,
        token_lifetime: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._audit = audit
        self._lockout_failures = lockout_failures
        self._lockout = lockout
        self._token_lifetime = token_lifetime
        self._clock = clock

    def provision(self, agent_id: str, *, name: str, password: str) -> None:
        """Create or reset an agent account (run by the mairie's administrator)."""
        if not AGENT_ID_RE.match(agent_id):
            raise ValueError(
                f"agent id {agent_id!r}: 2-32 characters, lower-case letters, digits, . _ -"
            )
        if len(password) < MIN_PASSWORD_CHARS:
            raise ValueError(f"password: at least {MIN_PASSWORD_CHARS} characters")
        salt = secrets.token_bytes(16)
        digest = hash_password(password, salt=salt, **SCRYPT_PARAMS)
        kdf = {"alg": "scrypt", "salt": salt.hex(), **SCRYPT_PARAMS}
        self._store.add_agent(agent_id, name=name, kdf=kdf, hash_=digest)
        self._audit.append("agent_provisioned", actor="admin", subject=agent_id)

    def disable(self, agent_id: str) -> None:
        self._store.set_agent_disabled(agent_id, disabled=True)
        self._audit.append("agent_disabled", actor="admin", subject=agent_id)

    def sign_in(self, agent_id: str, password: str) -> str:
        """Returns a sign-in token, or raises SignInRefusedError / AgentLockedError."""
        now = self._clock()
        agent = self._store.agent(agent_id)
        if agent is None or agent.disabled:
            hash_password(password, salt=_DUMMY_SALT, **SCRYPT_PARAMS)
            self._audit.append("signin_refused", actor=agent_id[:64], subject="unknown")
            raise SignInRefusedError("bad_credentials", "Identifiant ou mot de passe incorrect.")
        if agent.locked_until is not None and datetime.fromisoformat(agent.locked_until) > now:
            self._audit.append("signin_refused", actor=agent_id, subject="locked")
            until = datetime.fromisoformat(agent.locked_until)
            raise AgentLockedError(
                "agent_locked",
                "Compte verrouillé après plusieurs échecs. Réessayez après "
                f"{until.astimezone().strftime('%H:%M')}.",
                locked_until=agent.locked_until,
            )
        kdf = agent.kdf
        digest = hash_password(
            password, salt=bytes.fromhex(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"]
        )
        if not hmac.compare_digest(digest, agent.hash):
            failures = agent.failures + 1
            locked_until = None
            if failures >= self._lockout_failures:
                locked_until = (now + self._lockout).isoformat()
                failures = 0
                self._audit.append("agent_locked", actor=agent_id, subject=agent_id)
            self._store.set_agent_failures(agent_id, failures=failures, locked_until=locked_until)
            self._audit.append("signin_refused", actor=agent_id, subject="bad_password")
            if locked_until is not None:
                raise AgentLockedError(
                    "agent_locked",
                    "Trop d'échecs : compte verrouillé pendant "
                    f"{int(self._lockout.total_seconds() // 60)} minutes.",
                    locked_until=locked_until,
                )
            raise SignInRefusedError("bad_credentials", "Identifiant ou mot de passe incorrect.")
        self._store.set_agent_failures(agent_id, failures=0, locked_until=None)
        token = secrets.token_urlsafe(32)
        self._store.add_token(
            _token_hash(token),
            agent_id=agent_id,
            created_at=now.isoformat(),
            expires_at=(now + self._token_lifetime).isoformat(),
        )
        self._audit.append("signin", actor=agent_id, subject=agent_id)
        return token

    def authenticate(self, token: str) -> str:
        """The agent id behind a token, or :class:`NotAuthenticatedError`."""
        found = self._store.token(_token_hash(token)) if token else None
        if found is None or datetime.fromisoformat(found[1]) <= self._clock():
            raise NotAuthenticatedError("not_signed_in", "Session expirée : reconnectez-vous.")
        return found[0]

    def sign_out(self, token: str) -> None:
        agent_id = self.authenticate(token)
        self._store.delete_token(_token_hash(token))
        self._audit.append("signout", actor=agent_id, subject=agent_id)

    def display_name(self, agent_id: str) -> str:
        agent = self._store.agent(agent_id)
        return agent.name if agent is not None else agent_id


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
