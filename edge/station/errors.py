"""The station's exception tree.

Every refusal carries a stable ``code`` (for scripts and tests) and a French ``message`` that
the console shows to the agent as is. ``http_status`` tells the console's JSON API how to
answer it.
"""

from __future__ import annotations


class StationError(Exception):
    """A refusal of the workflow: the agent can read ``message`` and act on it."""

    http_status = 400

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class NotAuthenticatedError(StationError):
    http_status = 401


class SignInRefusedError(StationError):
    http_status = 401


class AgentLockedError(SignInRefusedError):
    http_status = 423


class WrongStepError(StationError):
    """The action does not belong to the session's current step."""

    http_status = 409


class SessionNotFoundError(StationError):
    http_status = 404


class PrerequestRefusedError(StationError):
    """A pre-request number or QR code that cannot be used (code says why)."""

    http_status = 422


class StampRefusedError(StationError):
    http_status = 422


class DocumentsIncompleteError(StationError):
    http_status = 422


class CaptureProblemError(StationError):
    """A capture that did not give a usable image (retry-worthy unless ``device`` is set)."""

    http_status = 422


class DeviceUnavailableError(StationError):
    http_status = 503


class CentralUnavailableError(StationError):
    """Central cannot be reached and the action needs it."""

    http_status = 503


class NoRequestNumberError(StationError):
    http_status = 503


class QueueFullError(StationError):
    http_status = 507
