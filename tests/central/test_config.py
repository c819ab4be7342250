"""central.config: TOML, defaults, environment overrides, errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.config import ConfigError, load_config


def test_defaults_from_data_dir(tmp_path: Path) -> None:
    config = load_config(None, env={}, data_dir=tmp_path)
    assert config.database == f"sqlite://{tmp_path / 'central.db'}"
    assert config.key_dir == tmp_path / "keys"
    assert config.http_port == 8480
    assert config.operator_token() is None


def test_file_relative_paths_and_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text(
        '[central]\ndata_dir = "state"\n[http]\nport = 9000\n[leases]\nmax_count = 20\n'
        '[mqtt]\nbroker = "localhost"\n',
        encoding="utf-8",
    )
    config = load_config(
        path, env={"DR_CENTRAL_HTTP_PORT": "9100", "DR_CENTRAL_DATABASE": "postgresql://x@h/db"}
    )
    assert config.data_dir == tmp_path / "state"
    assert config.http_port == 9100
    assert config.lease_max_count == 20
    assert config.database == "postgresql://x@h/db"
    assert config.mqtt == {"broker": "localhost"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[http]\nport = 'abc'\n", "http.port"),
        ("[http]\nport = 70000\n", "http.port"),
        ("[http]\nprot = 1\n", "http.prot"),
        ("[nope]\nx = 1\n", "nope"),
        ("[leases]\nmax_count = -1\n", "leases.max_count"),
        ("[central]\ndatabase = 'mysql://x'\n", "central.database"),
        ("[central\n", "-"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "central.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.key == key
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)


def test_env_error_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"DR_CENTRAL_LEASES_MAX_OPEN": "many"}, data_dir=tmp_path)
    assert caught.value.source == "DR_CENTRAL_LEASES_MAX_OPEN"
    assert caught.value.key == "leases.max_open"


def test_operator_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("short\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text('[http]\noperator_token_file = "token"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="operator_token_file"):
        load_config(path, env={}).operator_token()
    token.write_text("0123456789abcdef0123\n", encoding="utf-8")
    assert load_config(path, env={}).operator_token() == "0123456789abcdef0123"
