"""Errors of the edge link, for the station to act on.

``LinkUnavailableError`` (and its subclass ``RpcTimeoutError``) means "central cannot be reached
now": the station switches to offline mode (leased numbers, queued enrolments).
``RpcRejectedError`` means central answered and refused: show ``rejection.message_fr``.
"""

from __future__ import annotations

from dr_contracts.messages import RpcOp
from dr_contracts.rejections import Rejection

__all__ = [
    "LinkError",
    "LinkUnavailable",
    "LinkUnavailableError",
    "RpcProtocolError",
    "RpcRejectedError",
    "RpcTimeout",
    "RpcTimeoutError",
]


class LinkError(Exception):
    """Base of the edge link's errors."""


class LinkUnavailableError(LinkError):
    """Not connected to the broker (or the connection dropped during the call)."""


class RpcTimeoutError(LinkUnavailableError, TimeoutError):
    """Connected, but central did not answer in time."""

    def __init__(self, op: RpcOp, timeout_s: float) -> None:
        super().__init__(f"no reply to {op} within {timeout_s:g} s")
        self.op = op
        self.timeout_s = timeout_s


class RpcRejectedError(LinkError):
    """Central answered with a rejection (code + French message for the agent)."""

    def __init__(self, op: RpcOp, rejection: Rejection) -> None:
        super().__init__(f"{op} rejected: {rejection.code}")
        self.op = op
        self.rejection = rejection


class RpcProtocolError(LinkError):
    """Central's reply was well signed but not what the operation returns."""


# The names the station's brief uses.
LinkUnavailable = LinkUnavailableError
RpcTimeout = RpcTimeoutError
