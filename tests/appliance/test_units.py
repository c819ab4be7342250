"""The systemd units and udev rules are valid and keep their hardening."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = ("dr-edge.service", "dr-central.service", "dr-sim@.service")


def _parse(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify(project_root: Path, tmp_path: Path, unit: str) -> None:
    # verify insists that ExecStart binaries exist: point them at this environment's scripts.
    bindir = Path(sys.executable).parent
    text = (project_root / "systemd" / unit).read_text()
    text = text.replace("/opt/dr-station/bin/", f"{bindir}/")
    target = tmp_path / (unit.replace("@", "@test") if "@" in unit else unit)
    target.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Lines about the host's own units (missing targets on a container) are not ours.
    ours = [line for line in result.stderr.splitlines() if target.name in line]
    assert result.returncode == 0 or not ours, result.stderr
    assert not ours, "\n".join(ours)


def test_edge_unit_is_notify_with_watchdog_and_hardened(project_root: Path) -> None:
    service = _parse(project_root / "systemd" / "dr-edge.service")["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "User": "dr-edge",
        "StateDirectory": "dr-edge",
        "SupplementaryGroups": "dialout",
    }.items():
        assert service[key] == value, key


def test_udev_rules_name_the_devices_for_the_daemon(project_root: Path) -> None:
    rules = (project_root / "systemd" / "udev" / "99-dr-station.rules").read_text()
    logical = re.sub(r"\\\n\s*", "", rules)
    lines = [line for line in logical.splitlines() if line and not line.startswith("#")]
    token = re.compile(r'^\s*[A-Za-z_{}]+\s*(==|!=|\+=|=|:=)\s*"[^"]*"\s*$')
    for line in lines:
        for part in line.split(","):
            assert token.match(part), f"malformed udev rule part: {part!r}"
    assert 'SYMLINK+="dr-sensor"' in rules
    assert 'SYMLINK+="dr-scanner"' in rules
    edge = (project_root / "systemd" / "dr-edge.service").read_text()
    assert "/dev/dr-sensor" in edge
