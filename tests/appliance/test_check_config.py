"""``dr-edge check-config`` and ``dr-central check-config``: a bad file is refused with exit
status 2 and a message naming the file and the key; the environment overrides the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from central.cli import main as central_main
from edge.cli import main as edge_main

EDGE_OK = '[device]\nid = "dr-91228-01"\nstate_dir = "state"\n'


def _edge(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = edge_main(["check-config", "--config", str(path)])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (EDGE_OK + "[console]\nprot = 8080\n", "console.prot", "unknown key"),
        (EDGE_OK + "[console]\nport = 'eighty'\n", "console.port", "cannot read"),
        (EDGE_OK + "[console]\nport = true\n", "console.port", "expected an integer"),
        (EDGE_OK + "[link]\nenabled = 3\n", "link.enabled", "expected true or false"),
        (EDGE_OK + "[consol]\nport = 1\n", "consol", "unknown section"),
        (EDGE_OK + "[console]\nport = 70000\n", "console.port", "out of range"),
        (EDGE_OK + "[console]\nhost = '0.0.0.0'\n", "console.host", "loopback"),
        ('[device]\nid = "mairie-1"\n', "device.id", "device id"),
        (EDGE_OK + "[console\n", "-", "not valid TOML"),
    ],
)
def test_edge_bad_file_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, reason: str
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    status, out, err = _edge(path, capsys)
    assert status == 2
    assert out == ""
    assert f"{path}: {key}: " in err
    assert reason in err


def test_edge_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.toml"
    status, _, err = _edge(path, capsys)
    assert status == 2
    assert str(path) in err
    assert "not found" in err


def test_edge_good_file_prints_effective_config_with_env_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_OK + "[console]\nport = 8080\n")
    monkeypatch.setenv("DR_EDGE_CONSOLE_PORT", "8181")
    status, out, _ = _edge(path, capsys)
    assert status == 0
    data = json.loads(out)
    assert data["console"]["port"] == 8181  # the environment wins over the file
    assert data["device"]["state_dir"] == str(tmp_path / "state")  # relative to the file
    assert data["sensor"]["baud"] == 57600  # a default


def test_edge_bad_environment_value_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_OK)
    monkeypatch.setenv("DR_EDGE_LINK_PORT", "many")
    status, _, err = _edge(path, capsys)
    assert status == 2
    assert "link.port" in err


def _central(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = central_main(["--config", str(path), *args])
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[http]\nprot = 1\n", "http.prot", "unknown key"),
        ("[http]\nport = 'x'\n", "http.port", "expected an integer"),
        ("[http]\nport = 0\n", "http.port", "positive integer"),
        ("[leases]\nmax_count = true\n", "leases.max_count", "expected an integer"),
        ("[centrale]\n", "centrale", "unknown section"),
        ("[central]\ndatabase = 'mysql://x'\n", "central.database", "postgresql"),
        ("mqtt = 3\n", "mqtt", "expected a table"),
        ("[http\n", "-", "not valid TOML"),
    ],
)
def test_central_bad_file_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, reason: str
) -> None:
    path = tmp_path / "central.toml"
    path.write_text(text)
    status, out, err = _central(path, capsys, "check-config")
    assert status == 2
    assert out == ""
    assert f"{path}: {key}: " in err
    assert reason in err


def test_central_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.toml"
    status, _, err = _central(path, capsys, "check-config")
    assert status == 2
    assert str(path) in err
    assert "not found" in err


def test_central_check_config_needs_keys_then_passes_after_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "central.toml"
    path.write_text('[central]\ndata_dir = "data"\n[http]\nport = 8480\n')
    monkeypatch.setenv("DR_CENTRAL_HTTP_PORT", "9090")
    status, out, _ = _central(path, capsys, "check-config", "--json")
    assert status == 2
    assert any("keys" in p for p in json.loads(out)["problems"])
    assert _central(path, capsys, "init")[0] == 0
    status, out, _ = _central(path, capsys, "check-config", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["problems"] == []
    assert data["http"].endswith(":9090")


@pytest.mark.parametrize("command", [["run"], ["agent", "list"]])
def test_every_edge_command_reports_a_bad_file_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_OK + "[console]\nprot = 8080\n")
    status = edge_main([*command, "--config", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{path}: console.prot: unknown key" in err
