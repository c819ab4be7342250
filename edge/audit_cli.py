"""``dr-edge audit verify``: check the DR's audit trail (hash chain and signed heads).

    dr-edge audit verify --config dr-edge.toml        # <state_dir>/audit.sqlite3
    dr-edge audit verify --file /path/audit.sqlite3 --public-key device-signing.pub

Prints where the chain breaks (altered, removed or reordered entry, truncated tail) and exits
1 when it does; 0 when intact; 2 when the file or the configuration cannot be read. Signed
heads are checked against the device's Ed25519 key: the configured device bundle's, or the
public key file given (``device-signing.pub`` in the bundle; central's registry holds it too).
Entries are never printed (they name agents and sessions): only their sequence numbers.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dr_contracts.audit import AuditLog, key_id
from dr_contracts.keys import KeyFileError, load_ed25519_public_key

__all__ = ["register"]

AUDIT_FILE = "audit.sqlite3"  # in the state directory (edge.daemon.open_local)


def register(subparsers: Any) -> None:
    """Add the ``audit`` command to ``dr-edge``."""
    audit = subparsers.add_parser("audit", help="audit trail of personal and biometric data")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="check the hash chain and the signed heads")
    verify.add_argument("--config", default=None, help="TOML configuration (or $DR_EDGE_CONFIG)")
    verify.add_argument("--file", type=Path, default=None, help="audit file (default: state dir)")
    verify.add_argument(
        "--public-key", type=Path, default=None, help="device's Ed25519 public key (PEM)"
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=_verify)


def _targets(args: argparse.Namespace) -> tuple[Path, dict[str, Ed25519PublicKey]]:
    from edge.config import load_config

    keys: dict[str, Ed25519PublicKey] = {}
    if args.public_key is not None:
        public = load_ed25519_public_key(args.public_key)
        keys[key_id(public)] = public
    config_path = args.config or os.environ.get("DR_EDGE_CONFIG")
    if args.file is not None and config_path is None:
        return args.file, keys
    config = load_config(Path(config_path) if config_path else None)
    if config.device.bundle_dir is not None:
        from edge.station.bundle import load_bundle

        bundle = load_bundle(config.device.bundle_dir, device_id=config.device.id)
        public = bundle.signing_key.public_key
        keys[key_id(public)] = public
    return args.file or config.device.state_dir / AUDIT_FILE, keys


def _verify(args: argparse.Namespace) -> int:
    try:
        path, keys = _targets(args)
    except (OSError, ValueError, KeyFileError) as exc:
        print(f"Configuration illisible : {exc}")
        return 2
    if not path.is_file():
        print(f"Journal d'audit introuvable : {path}")
        return 2
    audit = AuditLog(path)  # no signer: opening and closing write nothing to the chain
    try:
        report = audit.verify(keys)
    finally:
        audit.close()
    if args.json:
        data = {
            "file": str(path),
            "ok": report.ok,
            "entries": report.entries,
            "signed_heads": report.signed_heads,
            "problems": [
                {"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in report.problems
            ],
        }
        print(json.dumps(data, indent=2))
    else:
        state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
        print(
            f"audit {path}: {report.entries} entries, {report.signed_heads} signed heads, {state}"
        )
        for problem in report.problems:
            print(f"  {problem}")
    return 0 if report.ok else 1
