"""``dr-edge support-bundle -o F.tar.gz``: what support needs to diagnose a station.

The archive holds ``versions.json``, ``config.json`` (redacted), ``queue.json`` (outbox
statistics: counts, sizes, ages; never a payload), ``files.json`` (names, sizes and modes of
the state and bundle directories; never a content) and ``logs.txt`` (the unit's journal
and/or ``--log-file`` tails, redacted). A configuration that does not load is reported in the
manifest's ``problems`` and the rest is collected anyway: a broken station is when a bundle is
needed most.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dr_contracts.supportbundle import (
    BundleWriter,
    SupportBundleError,
    list_files,
    redact_mapping,
    versions,
)
from edge.config import ConfigError, EdgeConfig, load_config

UNIT = "dr-edge.service"
ENV_CONFIG = "DR_EDGE_CONFIG"


def _queue_stats(config: EdgeConfig) -> dict[str, Any]:
    if not config.outbox_db.exists():
        return {"outbox": str(config.outbox_db), "present": False}
    from edge.queue import Outbox

    outbox = Outbox(config.outbox_db)
    try:
        stats = outbox.stats().as_dict()
    finally:
        outbox.close()
    return {"outbox": str(config.outbox_db), "present": True, **stats}


def build_bundle(
    output: Path,
    *,
    config_path: Path | None,
    log_files: Sequence[Path] = (),
    journal_lines: int = 2000,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Writes the support bundle to ``output``; returns its member names."""
    bundle = BundleWriter("dr-edge")
    bundle.add_json("versions.json", versions())
    config: EdgeConfig | None = None
    try:
        config = load_config(config_path, env=env)
    except ConfigError as exc:
        bundle.problem("configuration", exc)
    if config is not None:
        bundle.add_json("config.json", redact_mapping(dataclasses.asdict(config)))
        try:
            bundle.add_json("queue.json", _queue_stats(config))
        except Exception as exc:  # noqa: BLE001 - reported in the manifest, bundle goes on
            bundle.problem("queue statistics", exc)
        files: dict[str, object] = {"state_dir": list_files(config.device.state_dir)}
        if config.device.bundle_dir is not None:
            files["bundle_dir"] = list_files(config.device.bundle_dir)
        bundle.add_json("files.json", files)
    bundle.add_logs(unit=UNIT, log_files=log_files, journal_lines=journal_lines)
    return list(bundle.write(output))


def cmd_support_bundle(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get(ENV_CONFIG)
    try:
        members = build_bundle(
            Path(args.output),
            config_path=Path(path) if path else None,
            log_files=[Path(p) for p in args.log_file],
            journal_lines=args.lines,
        )
    except SupportBundleError as exc:
        print(f"support bundle not written: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output}: {', '.join(members)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "support-bundle",
        help="write a .tar.gz for support (versions, redacted config, queue stats, logs)",
    )
    p.add_argument("-o", "--output", required=True, help="archive to write (F.tar.gz)")
    p.add_argument(
        "--config", type=str, default=None, help=f"TOML configuration file (default: ${ENV_CONFIG})"
    )
    p.add_argument(
        "--log-file", action="append", default=[], help="also include this log file's tail"
    )
    p.add_argument("--lines", type=int, default=2000, help="journal lines to include")
    p.set_defaults(func=cmd_support_bundle)
