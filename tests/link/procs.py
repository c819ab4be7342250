"""Child processes for the kill and soak tests: a DR device and a central instance.

Run as ``python -m tests.link.procs edge|central CONFIG.json``. Each prints one line per
event on stdout (``READY``, ``ENQ <enrolment id>``, ``ACK <enrolment id> <number>``,
``IDLE``), flushed, so that the parent waits on events rather than on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from central.mqtt.server import CentralLink
from central.mqtt.settings import CentralLinkSettings
from central.service import CentralService
from dr_contracts.envelope import seal_record
from dr_contracts.keys import (
    CentralRecipientKey,
    SigningKey,
    load_ed25519_public_key,
    read_public_file,
)
from edge.link.client import EdgeLink
from edge.link.settings import LinkSettings
from edge.queue import (
    AsyncOutbox,
    Backoff,
    DuplicateEnrolmentError,
    Outbox,
    OutboxLimits,
    OutboxMeta,
)
from tests.fixtures.keys import sample_record

ENROLMENT_NAMESPACE = uuid.UUID("6f1c7a52-3f7e-4a7c-9a51-0d5c3b9e2a10")
FAST = Backoff(initial_s=0.05, factor=2.0, maximum_s=0.5, jitter=0.5)


def enrolment_id_for(prerequest_number: str) -> str:
    """Deterministic: a restarted device re-enqueues the same enrolment, not a new one."""
    return str(uuid.uuid5(ENROLMENT_NAMESPACE, prerequest_number))


def _say(line: str) -> None:
    print(line, flush=True)


async def run_edge(config: dict[str, Any]) -> None:
    device_id: str = config["device_id"]
    outbox = Outbox(
        Path(config["outbox"]),
        limits=OutboxLimits(
            ack_timeout_s=float(config.get("ack_timeout_s", 2.0)),
            backoff=Backoff(initial_s=0.1, factor=2.0, maximum_s=1.0, jitter=0.5),
        ),
    )
    signing = SigningKey.load(Path(config["signing_key"]))
    recipient = CentralRecipientKey.from_pem(read_public_file(Path(config["central_recipient"])))
    central_key = load_ed25519_public_key(Path(config["central_signing"]))
    rng = random.Random(config.get("seed", device_id))
    assigned: list[str] = config["prerequests"]
    pending = {enrolment_id_for(n) for n in assigned}
    done = asyncio.Event()

    def acked(enrolment_id: str, number: str) -> None:
        _say(f"ACK {enrolment_id} {number}")
        pending.discard(enrolment_id)

    link = EdgeLink(
        LinkSettings(
            device_id=device_id,
            host=config["host"],
            port=int(config["port"]),
            ca_file=Path(config["ca_file"]),
            cert_file=Path(config["cert_file"]),
            key_file=Path(config["key_file"]),
            reconnect=FAST,
            inflight_window=int(config.get("window", 16)),
            idle_poll_s=0.5,
        ),
        signing_key=signing,
        central_key=central_key,
        outbox=AsyncOutbox(outbox),
        on_acked=acked,
    )

    async def produce() -> None:
        for number in assigned:
            enrolment_id = enrolment_id_for(number)
            now = datetime.now(UTC)
            record = sample_record(
                rng,
                device_id=device_id,
                prerequest_number=number,
                enrolment_id=enrolment_id,
                started_at=now,
                completed_at=now,
            )
            # Committed before a kill: never a second enrolment for the same pre-request.
            with contextlib.suppress(DuplicateEnrolmentError):
                await asyncio.to_thread(
                    outbox.enqueue,
                    enrolment_id,
                    seal_record(record, recipient=recipient, signer=signing),
                    meta=OutboxMeta(prerequest_number=number),
                )
            _say(f"ENQ {enrolment_id}")
            link.notify_enqueued()

    async def watch() -> None:
        while True:
            stats = await asyncio.to_thread(outbox.stats)
            entries = [outbox.entry(e) for e in list(pending)]
            for entry in entries:
                if entry.state == "acked":
                    pending.discard(entry.enrolment_id)
            if not pending and stats.pending_count == 0:
                _say("IDLE")
                done.set()
                return
            await asyncio.sleep(0.2)  # polling the outbox file, the parent waits on IDLE

    async with asyncio.TaskGroup() as tg:
        link_task = tg.create_task(link.run())
        await produce()
        await tg.create_task(watch())
        await done.wait()
        link_task.cancel()
    outbox.close()


async def run_central(config: dict[str, Any]) -> None:
    service = CentralService.open(database=config["database"], key_dir=Path(config["key_dir"]))
    link = CentralLink(
        CentralLinkSettings(
            host=config["host"],
            port=int(config["port"]),
            ca_file=Path(config["ca_file"]),
            cert_file=Path(config["cert_file"]),
            key_file=Path(config["key_file"]),
            instance=config["instance"],
            reconnect_initial_s=0.05,
            reconnect_max_s=0.5,
        ),
        backend=service,
        signing_key=service.keys.signing,
    )

    async def ready() -> None:
        await link.wait_connected()
        _say("READY")

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(link.run())
            tg.create_task(ready())
    finally:
        service.close()


def main(argv: list[str]) -> None:
    role, config_path = argv
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    runner = {"edge": run_edge, "central": run_central}[role]
    asyncio.run(runner(config))


if __name__ == "__main__":
    main(sys.argv[1:])
