"""Support bundles: one ``.tar.gz`` an operator sends to support, shared by edge and central.

A bundle holds JSON documents (versions, redacted configuration, statistics) and recent log
text. Everything that goes in passes through :func:`redact_mapping` or
:func:`dr_contracts.logsetup.redact`: no key material, password, token, biometric or
personal data ever leaves the machine in a bundle. Each program decides *what* to collect
(:mod:`edge.support`, :mod:`central.support`); this module only redacts and writes.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from dr_contracts.logsetup import redact

REDACTED: Final = "[redacted]"
# Keys whose *values* are secrets. A key naming a file or directory (``key_file``,
# ``operator_token_file``) holds a path, which support needs and which is not a secret.
_SECRET_KEY: Final = re.compile(r"pass(word|phrase)?|secret|token|credential|private|^key$", re.I)
_PATH_KEY: Final = re.compile(r"(_file|_dir|_path|_files)$")
# ``password=...``, ``"token": "..."`` in free text (a log line that should not have been).
_SECRET_ASSIGNMENT: Final = re.compile(
    r"(?P<name>pass(?:word|wd|phrase)?|secret|token|credential|authorization)"
    r"(?P<sep>[\"']?\s*[=:]\s*(?:bearer\s+)?[\"']?)[^\s\"',;&]+",
    re.I,
)
_URL_PASSWORD: Final = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@")
# Third-party distributions whose versions matter when reading a bug report.
DEPENDENCIES: Final = (
    "aiohttp",
    "aiomqtt",
    "cbor2",
    "cryptography",
    "numpy",
    "paho-mqtt",
    "pillow",
    "psycopg",
    "pyserial",
    "pyserial-asyncio",
    "scipy",
)
MAX_LOG_BYTES: Final = 2 * 1024 * 1024  # per log source, the newest part is kept
MAX_LISTED_FILES: Final = 200


class SupportBundleError(Exception):
    """The bundle could not be written; ``path`` is the output file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def redact_value(value: object) -> object:
    """Redacts one configuration value (recursively for tables and lists)."""
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_mapping(data: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``data`` in which secret values are replaced by :data:`REDACTED`."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = str(key)
        if _SECRET_KEY.search(name) and not _PATH_KEY.search(name) and value not in (None, ""):
            out[name] = REDACTED
        else:
            out[name] = redact_value(value)
    return out


def versions(*, distribution: str = "dr-station") -> dict[str, object]:
    """Versions of this software, Python, the OS and the main dependencies."""
    deps: dict[str, str | None] = {}
    for name in DEPENDENCIES:
        try:
            deps[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            deps[name] = None
    try:
        own: str | None = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        own = None
    return {
        distribution: own,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "dependencies": deps,
    }


def list_files(directory: Path) -> list[dict[str, object]]:
    """Names, sizes and modes of the files under ``directory`` (contents are never read)."""
    out: list[dict[str, object]] = []
    for path in sorted(directory.rglob("*"))[:MAX_LISTED_FILES]:
        try:
            info = path.lstat()
        except OSError:
            continue
        out.append(
            {
                "path": str(path.relative_to(directory)),
                "type": "dir" if stat.S_ISDIR(info.st_mode) else "file",
                "size": info.st_size,
                "mode": oct(stat.S_IMODE(info.st_mode)),
            }
        )
    return out


def tail_file(path: Path, *, max_bytes: int = MAX_LOG_BYTES) -> str:
    """The last ``max_bytes`` of a log file, redacted line by line."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    return redact_lines(text.splitlines())


def redact_text(text: str) -> str:
    """:func:`dr_contracts.logsetup.redact` plus secrets written as assignments or in URLs."""
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}", text)
    return redact(_URL_PASSWORD.sub(r"\g<scheme>\g<user>:" + REDACTED + "@", text))


def redact_lines(lines: Iterable[str]) -> str:
    return "".join(redact_text(line) + "\n" for line in lines)


def journal_tail(unit: str, *, lines: int) -> str | None:
    """The unit's recent journal (redacted), or None when journalctl is not available."""
    exe = shutil.which("journalctl")
    if exe is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed executable, no shell
            [exe, "--unit", unit, "--lines", str(lines), "--no-pager", "--output", "short-iso"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return redact_lines(done.stdout.decode("utf-8", errors="replace").splitlines()[-lines:])


@dataclass
class BundleWriter:
    """Collects members in memory, then writes the archive atomically (0600)."""

    program: str
    members: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add_json(self, name: str, data: object) -> None:
        self.members[name] = (
            json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
        ).encode()

    def add_text(self, name: str, text: str) -> None:
        self.members[name] = redact_lines(text.splitlines()).encode()

    def add_logs(self, *, unit: str, log_files: Sequence[Path], journal_lines: int) -> None:
        """``logs.txt``: the unit's journal (where there is one) and the given log files."""
        logs: list[str] = []
        journal = journal_tail(unit, lines=journal_lines)
        if journal is not None:
            logs.append(f"# journal of {unit}\n{journal}")
        for path in log_files:
            try:
                logs.append(f"# {path}\n{tail_file(path)}")
            except OSError as exc:
                self.problem(f"log file {path}", exc)
        self.add_text("logs.txt", "\n".join(logs) if logs else "# no log source available")

    def problem(self, what: str, exc: BaseException) -> None:
        """Notes something that could not be collected; the bundle is written anyway."""
        self.problems.append(redact(f"{what}: {type(exc).__name__}: {exc}"))

    def write(self, path: Path) -> Sequence[str]:
        """Writes ``path`` (``.tar.gz``) and returns the member names."""
        self.add_json(
            "manifest.json",
            {
                "program": self.program,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "members": sorted([*self.members, "manifest.json"]),
                "problems": self.problems,
            },
        )
        prefix = f"{self.program}-support"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name, data in sorted(self.members.items()):
                    info = tarfile.TarInfo(f"{prefix}/{name}")
                    info.size = len(data)
                    info.mode = 0o600
                    info.mtime = int(time.time())
                    tar.addfile(info, io.BytesIO(data))
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SupportBundleError(path, exc.strerror or str(exc)) from exc
        return sorted(self.members)
