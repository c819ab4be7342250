"""Logging for every program of the stack: structured, to the journal or stderr, redacted.

- Under systemd (``$JOURNAL_STREAM`` set) each record is one logfmt line prefixed with its
  syslog priority (``<3>`` ...), which journald turns into the entry's PRIORITY.
- Elsewhere, one JSON object per line on stderr (``format="json"``) or logfmt for people.

Whatever a caller passes, a :class:`RedactingFilter` runs first: binary arguments become their
length, long base64/hex runs (a template, an image, a key) become a marker, PEM blocks are cut,
pre-request numbers and tax stamp numbers are masked. Logs are for operations; they never carry
biometric or personal data, and code should not try to log it in the first place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

LogFormat = Literal["auto", "json", "logfmt", "journal"]

_PRIORITY: Final = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
_PEM: Final = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.DOTALL)
# 48+ characters of base64 or hex alphabet: long enough that ids, hashes prefixes and words
# survive, short enough that any template or image fragment does not.
_BLOB: Final = re.compile(r"[A-Za-z0-9+/=_-]{48,}")
_PREREQUEST: Final = re.compile(r"\b([A-Z0-9]{2})[A-Z0-9]{8}\b")
_STAMP: Final = re.compile(r"\b(\d{4})\d{8}(\d{4})\b")
# Standard LogRecord attributes: everything else a caller passed in ``extra`` is a field.
_RESERVED: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    """Remove what must never reach a log from a piece of text."""
    text = _PEM.sub("[redacted PEM block]", text)
    text = _BLOB.sub(lambda m: f"[redacted {len(m.group())} chars]", text)
    text = _STAMP.sub(r"\1********\2", text)
    return _PREREQUEST.sub(
        lambda m: m.group(1) + "*" * 8 if _has_digit(m.group()) else m.group(), text
    )


def _has_digit(token: str) -> bool:
    # A pre-request number mixes letters and digits; a plain upper-case word is left alone.
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def _safe(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, arguments and extra fields so nothing sensitive is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        try:
            if isinstance(args, Mapping):
                message = str(record.msg) % {k: _safe(v) for k, v in args.items()}
            elif args:
                message = str(record.msg) % tuple(_safe(a) for a in args)
            else:
                message = str(record.msg)
        except (TypeError, ValueError):
            message = f"{record.msg!r} (arguments did not match the format)"
        record.msg = redact(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED:
                setattr(record, key, _safe(value))
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class LogfmtFormatter(logging.Formatter):
    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        parts = (
            []
            if self._journal
            else [
                "ts="
                + datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            ]
        )
        parts += [f"level={record.levelname.lower()}", f"logger={record.name}"]
        parts.append("msg=" + json.dumps(record.getMessage(), ensure_ascii=False))
        for key, value in _fields(record).items():
            parts.append(f"{key}={json.dumps(value, ensure_ascii=False, default=str)}")
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + json.dumps(redact(self.formatException(record.exc_info)))
        if self._journal:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def configure_logging(
    *,
    level: str | int = "INFO",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Install the stack's handler on the root logger and return it."""
    env = os.environ if environ is None else environ
    if fmt == "auto":
        fmt = "journal" if env.get("JOURNAL_STREAM") else "logfmt"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(LogfmtFormatter(journal=fmt == "journal"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_dr_stack", False)]:
        root.removeHandler(old)
    handler._dr_stack = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler
