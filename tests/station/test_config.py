"""edge/config.py: defaults, validation errors naming key and file, environment overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

GOOD = """
[device]
id = "dr-91228-01"
mairie = "Mairie d'Évry-Courcouronnes"
state_dir = "state"

[console]
port = 8081

[policy]
attempts_per_finger = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dr-edge.toml"
    path.write_text(text)
    return path


def test_good_file_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    assert config.device.id == "dr-91228-01"
    assert config.device.state_dir == tmp_path / "state"
    assert config.console.port == 8081
    assert config.console.host == "127.0.0.1"
    assert config.policy.min_age_years == 12
    assert config.link.port == 8883


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, GOOD),
        env={"DR_EDGE_CONSOLE_PORT": "9090", "DR_EDGE_LINK_ENABLED": "false"},
    )
    assert config.console.port == 9090
    assert config.link.enabled is False
    unit = load_config(write(tmp_path, GOOD), env={"DR_EDGE_STATE_DIR": "/var/lib/dr-edge"})
    assert unit.device.state_dir == Path("/var/lib/dr-edge")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD.replace('id = "dr-91228-01"', 'id = "station-1"'), "device.id"),
        (GOOD + '\n[sensor]\nbaud = "fast"\n', "sensor.baud"),
        (GOOD + "\n[sensor]\nbaud = 1234\n", "sensor.baud"),
        (GOOD.replace("port = 8081", 'host = "0.0.0.0"'), "console.host"),
        (GOOD.replace("port = 8081", "port = 70000"), "console.port"),
        (GOOD + "\n[link]\ncolour = 1\n", "link.colour"),
        (GOOD + "\n[nonsense]\n", "nonsense"),
        (
            GOOD.replace("attempts_per_finger = 3", "attempts_per_finger = 1"),
            "policy.attempts_per_finger",
        ),
        ("[device\n", "-"),
    ],
)
def test_errors_name_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert err.value.key == key
    assert err.value.file == path
    assert str(path) in str(err.value)


def test_bad_environment_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD), env={"DR_EDGE_CONSOLE_PORT": "eighty"})
    assert err.value.key == "console.port"


def test_check_config_command(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check-config", "--config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert '"id": "dr-91228-01"' in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("port = 8081", "port = -1"))
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check-config", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "console.port" in out.stderr
    assert str(bad) in out.stderr
