"""A DR device as a child process, for the dashboard tests: a real MQTT 5 client with its
certificate, publishing signed state (retained, with the ``offline`` last will, as EdgeLink
does) and telemetry; killing it with SIGKILL drops the connection without DISCONNECT.

Run as ``python -m tests.dashboard.device_proc CONFIG.json``. Prints ``READY`` once online,
then reads commands on stdin and answers ``OK <command>`` once the broker has the message:

    telemetry DEPTH AGE_S|- SENSOR DISK_BYTES
    enrol PATH          publish a sealed envelope (file) on dr/<id>/enrolments
    forge               telemetry signed with a key that is not the device's
    stop                publish offline, disconnect, exit
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt

from dr_contracts import topics
from dr_contracts.keys import SigningKey
from dr_contracts.messages import (
    BROADCAST,
    CENTRAL,
    Body,
    DeviceState,
    Telemetry,
    encode_message,
    new_message_id,
)
from edge.link.transport import NODELAY, client_tls_context


def _say(line: str) -> None:
    print(line, flush=True)


async def run(config: dict[str, Any]) -> None:
    device_id: str = config["device_id"]
    key = SigningKey.from_pem(config["signing_key_pem"].encode())
    session = new_message_id()
    version = str(config.get("version", "1.0.0"))

    def sign(body: Body, *, recipient: str, signer: SigningKey = key) -> bytes:
        now_ms = int(time.time() * 1000)
        return encode_message(
            body, sender=device_id, recipient=recipient, key=signer, now_ms=now_ms
        )

    def state(status: str) -> bytes:
        body = DeviceState(
            status="online" if status == "online" else "offline", session=session, version=version
        )
        return sign(body, recipient=BROADCAST)

    state_topic = topics.device_topic(device_id, topics.STATE)
    client = aiomqtt.Client(
        config["host"],
        int(config["port"]),
        identifier=device_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=client_tls_context(
            ca_file=Path(config["ca_file"]),
            cert_file=Path(config["cert_file"]),
            key_file=Path(config["key_file"]),
        ),
        socket_options=NODELAY,
        keepalive=30,
        will=aiomqtt.Will(state_topic, state("offline"), qos=1, retain=True),
    )
    async with client:
        await client.publish(state_topic, state("online"), qos=1, retain=True)
        _say("READY")
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            words = line.split()
            if not words:
                return  # parent closed stdin
            command = words[0]
            if command in ("telemetry", "forge"):
                if command == "telemetry":
                    depth, age, sensor, disk = words[1:5]
                else:
                    depth, age, sensor, disk = "0", "-", "ready", str(50 << 30)
                body = Telemetry(
                    queue_depth=int(depth),
                    queue_bytes=int(depth) * 40_000,
                    oldest_pending_age_s=None if age == "-" else int(age),
                    sensor=sensor,
                    version=version,
                    disk_free_bytes=int(disk),
                )
                signer = SigningKey.generate() if command == "forge" else key
                await client.publish(
                    topics.device_topic(device_id, topics.TELEMETRY),
                    sign(body, recipient=CENTRAL, signer=signer),
                    qos=1,
                )
            elif command == "enrol":
                await client.publish(
                    topics.device_topic(device_id, topics.ENROLMENTS),
                    await asyncio.to_thread(Path(words[1]).read_bytes),
                    qos=1,
                )
            elif command == "stop":
                await client.publish(state_topic, state("offline"), qos=1, retain=True)
                _say("OK stop")
                return
            _say(f"OK {command}")


if __name__ == "__main__":
    settings = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    settings["signing_key_pem"] = Path(settings["signing_key"]).read_text(encoding="ascii")
    asyncio.run(run(settings))
