"""``dr-central support-bundle -o F.tar.gz``: what support needs to diagnose central.

The archive holds ``versions.json``, ``config.json`` (redacted: the database URL's password,
passwords and tokens of the ``[mqtt]``/``[dashboard]`` tables are replaced), ``stats.json``
(requests per stage, devices per state, key ids: the ingest side's "queue"), ``files.json``
(names, sizes, modes of the data directory) and ``logs.txt`` (the unit's journal and/or
``--log-file`` tails, redacted). What cannot be collected is listed in the manifest's
``problems``; the rest is written anyway.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from central.config import CentralConfig
from dr_contracts.supportbundle import (
    BundleWriter,
    list_files,
    redact_mapping,
    versions,
)

UNIT = "dr-central.service"


def _stats(config: CentralConfig) -> dict[str, Any]:
    from central.service import CentralService

    if config.database.startswith("sqlite://"):
        path = Path(config.database.removeprefix("sqlite://"))
        if not path.exists():  # opening would create an empty database
            return {"database_present": False}
    # No audit trail opened: a bundle must not append to it.
    service = CentralService.open(database=config.database, key_dir=config.key_dir)
    try:
        devices = service.devices()
        return {
            "database_present": True,
            "requests_by_stage": service.requests_by_stage(),
            "devices": len(devices),
            "devices_by_state": dict(Counter(str(d.state) for d in devices)),
        }
    finally:
        service.close()


def build_bundle(
    output: Path,
    *,
    config: CentralConfig,
    log_files: Sequence[Path] = (),
    journal_lines: int = 2000,
) -> list[str]:
    """Writes the support bundle to ``output``; returns its member names."""
    bundle = BundleWriter("dr-central")
    bundle.add_json("versions.json", versions())
    bundle.add_json("config.json", redact_mapping(dataclasses.asdict(config)))
    try:
        bundle.add_json("stats.json", _stats(config))
    except Exception as exc:  # noqa: BLE001 - reported in the manifest, bundle goes on
        bundle.problem("statistics", exc)
    if config.data_dir.is_dir():
        bundle.add_json("files.json", {"data_dir": list_files(config.data_dir)})
    bundle.add_logs(unit=UNIT, log_files=log_files, journal_lines=journal_lines)
    return list(bundle.write(output))
