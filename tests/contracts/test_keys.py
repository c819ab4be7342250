"""Key files: generation, 0600 storage, refusal of readable private keys, pinning, rotation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dr_contracts.keys import (
    KEY_ID_HEX_LENGTH,
    CentralDecryptionKey,
    CentralRecipientKey,
    FingerprintMismatchError,
    InsecureKeyFileError,
    KeyFormatError,
    MissingKeyFileError,
    SigningKey,
    ed25519_fingerprint,
    load_ed25519_public_key,
    load_recipient_keyring,
    normalize_fingerprint,
    save_ed25519_public_key,
    verify_ed25519,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_written_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        CentralDecryptionKey.generate().save(tmp_path / "central.key")
        SigningKey.generate().save(tmp_path / "device.key")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "central.key") == 0o600
    assert _mode(tmp_path / "device.key") == 0o600


def test_hpke_key_round_trips_through_its_file(tmp_path: Path) -> None:
    key = CentralDecryptionKey.generate()
    key.save(tmp_path / "k")
    loaded = CentralDecryptionKey.load(tmp_path / "k")
    assert loaded.fingerprint == key.fingerprint
    assert loaded.public_key() == key.public_key()
    assert len(key.key_id) == KEY_ID_HEX_LENGTH
    assert key.fingerprint.startswith(key.key_id)


def test_signing_key_round_trips_and_signs(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "d.key")
    loaded = SigningKey.load(tmp_path / "d.key")
    signature = loaded.sign(b"message")
    assert verify_ed25519(key.public_key, signature, b"message")
    assert not verify_ed25519(key.public_key, signature, b"messagE")
    assert loaded.key_id == key.key_id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
@pytest.mark.parametrize("kind", ["hpke", "ed25519"])
def test_private_key_readable_by_others_is_refused_naming_the_file(
    tmp_path: Path, mode: int, kind: str
) -> None:
    path = tmp_path / f"{kind}.key"
    if kind == "hpke":
        CentralDecryptionKey.generate().save(path)
    else:
        SigningKey.generate().save(path)
    path.chmod(mode)
    loader = CentralDecryptionKey.load if kind == "hpke" else SigningKey.load
    with pytest.raises(InsecureKeyFileError) as info:
        loader(path)
    assert info.value.path == path
    assert info.value.mode == mode
    assert str(path) in str(info.value)


def test_missing_and_garbage_key_files_get_specific_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingKeyFileError):
        SigningKey.load(tmp_path / "absent.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    garbage.chmod(0o600)
    with pytest.raises(KeyFormatError):
        SigningKey.load(garbage)
    with pytest.raises(KeyFormatError):
        CentralDecryptionKey.load(garbage)
    # An HPKE key file is not an Ed25519 key, and the other way round.
    hpke_file = tmp_path / "hpke.key"
    CentralDecryptionKey.generate().save(hpke_file)
    with pytest.raises(KeyFormatError):
        SigningKey.load(hpke_file)


def test_truncated_hpke_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    CentralDecryptionKey.generate().save(path)
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], lines[1][:-4], lines[-1]]) + b"\n")
    with pytest.raises(KeyFormatError):
        CentralDecryptionKey.load(path)


def test_central_public_key_pinned_by_fingerprint(tmp_path: Path) -> None:
    key = CentralDecryptionKey.generate()
    key.public_key().save(tmp_path / "central.pub")
    loaded = CentralRecipientKey.load(tmp_path / "central.pub", pinned_fingerprint=key.fingerprint)
    assert loaded == key.public_key()
    # Pins are accepted in upper case with colons, as people copy them.
    pretty = ":".join(key.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    CentralRecipientKey.load(tmp_path / "central.pub", pinned_fingerprint=pretty)
    other = CentralDecryptionKey.generate()
    with pytest.raises(FingerprintMismatchError) as info:
        CentralRecipientKey.load(tmp_path / "central.pub", pinned_fingerprint=other.fingerprint)
    assert info.value.expected == other.fingerprint
    assert info.value.actual == key.fingerprint
    with pytest.raises(ValueError, match="64 hex"):
        CentralRecipientKey.load(tmp_path / "central.pub", pinned_fingerprint="abc")


def test_swapped_public_key_file_fails_the_pin(tmp_path: Path) -> None:
    """An attacker who replaces central.pub on the device gets a refusal at load."""
    genuine = CentralDecryptionKey.generate()
    CentralDecryptionKey.generate().public_key().save(tmp_path / "central.pub")
    with pytest.raises(FingerprintMismatchError):
        CentralRecipientKey.load(tmp_path / "central.pub", pinned_fingerprint=genuine.fingerprint)


def test_ed25519_public_key_file_and_pin(tmp_path: Path) -> None:
    key = SigningKey.generate()
    save_ed25519_public_key(tmp_path / "d.pub", key.public_key)
    assert _mode(tmp_path / "d.pub") == 0o644
    loaded = load_ed25519_public_key(tmp_path / "d.pub", pinned_fingerprint=key.fingerprint)
    assert ed25519_fingerprint(loaded) == key.fingerprint
    with pytest.raises(FingerprintMismatchError):
        load_ed25519_public_key(
            tmp_path / "d.pub", pinned_fingerprint=SigningKey.generate().fingerprint
        )


def test_keyring_holds_current_and_previous_keys(tmp_path: Path) -> None:
    old, new = CentralDecryptionKey.generate(), CentralDecryptionKey.generate()
    old.save(tmp_path / "hpke-1.key")
    new.save(tmp_path / "hpke-2.key")
    keyring = load_recipient_keyring(sorted(tmp_path.glob("hpke-*.key")))
    assert set(keyring) == {old.key_id, new.key_id}
    new.save(tmp_path / "hpke-2-copy.key")
    with pytest.raises(ValueError, match="already in the keyring"):
        load_recipient_keyring(sorted(tmp_path.glob("hpke-*.key")))


def test_normalize_fingerprint() -> None:
    value = "AB" * 32
    assert normalize_fingerprint(value) == "ab" * 32
    with pytest.raises(ValueError, match="64 hex"):
        normalize_fingerprint("zz" * 32)
