"""Operator accounts (scrypt), lockout, sessions, settings and the accounts command."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from central.dashboard.__main__ import main as accounts_main
from central.dashboard.accounts import (
    AccountError,
    AccountsFileError,
    LockedOutError,
    LoginGuard,
    OperatorAccounts,
)
from central.dashboard.sessions import SessionStore
from central.dashboard.settings import DashboardSettings, DashboardSettingsError

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_password_is_stored_as_scrypt_hash_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "operators.json"
    accounts = OperatorAccounts(path)
    accounts.set_password("alice", PASSWORD)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="utf-8")
    assert PASSWORD not in text
    assert json.loads(text)["operators"]["alice"]["n"] >= 1 << 14
    reread = OperatorAccounts(path)
    assert reread.check("alice", PASSWORD)
    assert not reread.check("alice", PASSWORD + "!")
    assert not reread.check("bob", PASSWORD)


def test_weak_password_and_bad_login_are_refused(tmp_path: Path) -> None:
    accounts = OperatorAccounts(tmp_path / "operators.json")
    with pytest.raises(AccountError, match="12 characters"):
        accounts.set_password("alice", "short")
    with pytest.raises(AccountError, match="login"):
        accounts.set_password("Alice Smith", PASSWORD)
    assert accounts.logins == []


def test_readable_or_malformed_accounts_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "operators.json"
    OperatorAccounts(path).set_password("alice", PASSWORD)
    path.chmod(0o644)
    with pytest.raises(AccountsFileError, match="0600"):
        OperatorAccounts(path)
    path.chmod(0o600)
    path.write_text('{"version": 1, "operators": {"alice": {"n": 2}}}', encoding="utf-8")
    with pytest.raises(AccountsFileError, match="malformed"):
        OperatorAccounts(path)


def test_accounts_added_by_the_command_are_seen_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "operators.json"
    running = OperatorAccounts(path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert accounts_main(["--accounts", str(path), "set-password", "bob"]) == 0
    assert running.check("bob", PASSWORD)
    assert accounts_main(["--accounts", str(path), "remove", "bob"]) == 0
    assert accounts_main(["--accounts", str(path), "remove", "bob"]) == 1
    assert not running.check("bob", PASSWORD)


def test_lockout_after_repeated_failures_then_release() -> None:
    clock = Clock()
    guard = LoginGuard(max_failures=3, window_s=60, lockout_s=300, clock=clock)
    for _ in range(3):
        guard.check("alice", "addr:1")
        guard.failed("alice", "addr:1")
    with pytest.raises(LockedOutError) as caught:
        guard.check("alice")
    assert caught.value.retry_after_s == 300
    with pytest.raises(LockedOutError):
        guard.check("carol", "addr:1")  # the same client trying another login
    clock.now += 301
    guard.check("alice", "addr:1")


def test_failures_outside_the_window_do_not_lock() -> None:
    clock = Clock()
    guard = LoginGuard(max_failures=3, window_s=60, lockout_s=300, clock=clock)
    for _ in range(2):
        guard.failed("alice")
    clock.now += 61
    guard.failed("alice")
    guard.check("alice")
    guard.failed("alice")
    guard.succeeded("alice")
    guard.failed("alice")
    guard.check("alice")


def test_sessions_expire_when_idle_and_csrf_is_bound_to_the_session() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, lifetime_s=3600, clock=clock)
    token = store.create("alice")
    session = store.get(token)
    assert session is not None
    assert session.login == "alice"
    csrf = store.csrf_token("session", token)
    assert store.csrf_ok("session", token, csrf)
    assert not store.csrf_ok("session", store.create("bob"), csrf)
    assert not store.csrf_ok("login", token, csrf)
    clock.now += 61
    assert not store.alive(token)
    assert store.get(token) is None


def test_settings_from_the_configuration_table(tmp_path: Path) -> None:
    settings = DashboardSettings.from_mapping(
        {
            "accounts_file": "ops.json",
            "backlog_depth": 7,
            "offline_after_s": 30,
            "sensor_ok": ["ready"],
        },
        base_dir=tmp_path,
        data_dir=tmp_path / "data",
    )
    assert settings.accounts_file == tmp_path / "ops.json"
    assert settings.thresholds.backlog_depth == 7
    assert settings.thresholds.offline_after_s == 30.0
    assert DashboardSettings.from_mapping(
        {}, base_dir=tmp_path, data_dir=tmp_path
    ).accounts_file == (tmp_path / "operators.json")
    for bad, key in (
        ({"backlog_depth": 1.5}, "backlog_depth"),
        ({"colour": "blue"}, "colour"),
        ({"secure_cookie": "yes"}, "secure_cookie"),
        ({"refresh_s": 0}, "-"),
    ):
        with pytest.raises(DashboardSettingsError) as caught:
            DashboardSettings.from_mapping(bad, base_dir=tmp_path, data_dir=tmp_path)
        assert caught.value.key == key
