"""Operator sessions (server-side, in memory) and CSRF tokens.

The browser holds only a random session token in an HttpOnly, SameSite=Strict cookie; the
server keeps its SHA-256, the login and the expiry times. CSRF tokens are an HMAC of the
session token (or, before sign-in, of a pre-session cookie) under a per-process secret:
a page from another origin can neither read them nor have the cookie sent (SameSite).
A restart of central signs everyone out, which is acceptable for an operator console.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["Session", "SessionStore"]

TOKEN_BYTES: Final = 32


@dataclass
class Session:
    login: str
    created: float
    last_used: float


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


class SessionStore:
    """Sessions with an idle timeout and an absolute lifetime."""

    def __init__(
        self,
        *,
        idle_s: float = 30 * 60,
        lifetime_s: float = 12 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._secret = secrets.token_bytes(32)
        self._sessions: dict[bytes, Session] = {}

    def create(self, login: str) -> str:
        """Open a session for ``login``; return the token for the cookie."""
        self._expire()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        self._sessions[_digest(token)] = Session(login=login, created=now, last_used=now)
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle timer restarts), or None."""
        if not token:
            return None
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self.idle_s or now - session.created > self.lifetime_s:
            del self._sessions[key]
            return None
        session.last_used = now
        return session

    def alive(self, token: str) -> bool:
        """Like :meth:`get` without touching the idle timer (a live feed is not activity)."""
        session = self._sessions.get(_digest(token))
        if session is None:
            return False
        now = self._clock()
        return now - session.last_used <= self.idle_s and now - session.created <= self.lifetime_s

    def create_pre_token(self) -> str:
        """A random token for the sign-in form's CSRF check (before any session exists)."""
        return secrets.token_urlsafe(TOKEN_BYTES)

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def _expire(self) -> None:
        now = self._clock()
        for key in [
            k
            for k, s in self._sessions.items()
            if now - s.last_used > self.idle_s or now - s.created > self.lifetime_s
        ]:
            del self._sessions[key]

    # -- CSRF ---------------------------------------------------------------------------------
    def csrf_token(self, purpose: str, token: str) -> str:
        mac = hmac.new(self._secret, f"{purpose}\0{token}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def csrf_ok(self, purpose: str, token: str | None, given: str | None) -> bool:
        if not token or not given:
            return False
        return hmac.compare_digest(self.csrf_token(purpose, token), given)
