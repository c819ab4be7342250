"""Every command line in the systemd units is one the programs' real parsers accept."""

from __future__ import annotations

import argparse
import importlib
import shlex
from pathlib import Path

import pytest

from tests.appliance.test_units import _parse

PROGRAMS = {
    "dr-edge": "edge.cli",
    "dr-central": "central.cli",
    "dr-sim": "dr_sim.cli",
}
UNITS = {"dr-edge.service": "", "dr-central.service": "", "dr-sim@.service": "sensor"}


def _commands(path: Path, instance: str) -> list[list[str]]:
    service = _parse(path)["Service"]
    lines = [service[key] for key in ("ExecStartPre", "ExecStart") if key in service]
    return [shlex.split(line.replace("%i", instance)) for line in lines]


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_commands_parse(project_root: Path, unit: str) -> None:
    commands = _commands(project_root / "systemd" / unit, UNITS[unit])
    assert commands
    for argv in commands:
        program = Path(argv[0]).name
        assert argv[0] == f"/opt/dr-station/bin/{program}"
        parser: argparse.ArgumentParser = importlib.import_module(PROGRAMS[program]).build_parser()
        args = parser.parse_args(argv[1:])  # SystemExit(2) on a mismatch
        assert callable(getattr(args, "func", None)) or program == "dr-sim"


def test_central_unit_keeps_its_data_in_the_state_directory(project_root: Path) -> None:
    service = _parse(project_root / "systemd" / "dr-central.service")["Service"]
    assert service["StateDirectory"] == "dr-central"
    assert "DR_CENTRAL_DATA_DIR=/var/lib/dr-central" in service["Environment"]
