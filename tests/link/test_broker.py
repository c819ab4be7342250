"""central.broker: mosquitto from the generated configuration, over real TLS connections."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiomqtt
import pytest

from central.broker import BrokerIdentities, MosquittoBroker, render_acl
from central.pki import CertificateAuthority
from dr_contracts import topics
from tests.fixtures.broker import RunningBroker, TestPki


async def _receive_one(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(5):
        async for message in client.messages:
            return message
    raise AssertionError("message stream ended")


async def test_device_publishes_to_its_own_topic_and_central_receives(
    broker: RunningBroker,
) -> None:
    async with broker.client("central") as central, broker.client("dr-91228-01") as device:
        await central.subscribe(topics.shared(topics.ENROLMENTS), qos=1)
        await device.publish(topics.device_topic("dr-91228-01", topics.ENROLMENTS), b"x", qos=1)
        message = await _receive_one(central)
        assert str(message.topic) == "dr/dr-91228-01/enrolments"
        assert message.payload == b"x"


async def test_device_cannot_publish_or_read_another_devices_topics(
    broker: RunningBroker,
) -> None:
    async with (
        broker.client("central") as central,
        broker.client("dr-91228-01") as intruder,
        broker.client("dr-91228-02") as victim,
    ):
        await central.subscribe(f"{topics.DEVICE_ROOT}/#", qos=1)
        await intruder.subscribe(topics.device_topic("dr-91228-02", topics.ACKS), qos=1)
        # Forged publish into the victim's namespace: the broker drops it (PUBACK rc 135).
        await intruder.publish(topics.device_topic("dr-91228-02", topics.ENROLMENTS), b"f", qos=1)
        # Central's ack to the victim must not reach the intruder's subscription.
        await central.publish(topics.device_topic("dr-91228-02", topics.ACKS), b"ack", qos=1)
        # A marker from the victim, published after: once central sees it, the forged
        # message, had it been routed, would have arrived before it (per-broker ordering).
        await victim.publish(topics.device_topic("dr-91228-02", topics.ENROLMENTS), b"m", qos=1)
        seen = []
        async with asyncio.timeout(5):
            async for message in central.messages:
                seen.append(message.payload)
                if message.payload == b"m":
                    break
        assert b"f" not in seen
        # The intruder: a marker on its own ack topic arrives; the victim's ack never did.
        await intruder.subscribe(topics.device_topic("dr-91228-01", topics.ACKS), qos=1)
        await central.publish(topics.device_topic("dr-91228-01", topics.ACKS), b"own", qos=1)
        message = await _receive_one(intruder)
        assert message.payload == b"own"


async def test_client_without_certificate_is_refused(broker: RunningBroker) -> None:
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        timeout=3,
    )
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass


async def test_certificate_from_another_ca_is_refused(
    broker: RunningBroker, tmp_path: Path
) -> None:
    other_ca = CertificateAuthority.load_or_create(tmp_path / "other" / "ca")
    other = TestPki(directory=tmp_path / "other", ca=other_ca)
    files = other.client_files("dr-91228-01")
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    context.load_cert_chain(str(files.cert), str(files.key))
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        timeout=3,
    )
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass
    assert "certificate verify failed" in broker.process.log_text()


async def test_revoked_device_is_refused_after_restart(broker: RunningBroker) -> None:
    async with broker.client("dr-91228-03"):
        pass
    broker.pki.ca.revoke("dr-91228-03")
    broker.process.set_revoked({"dr-91228-03"})
    broker.restart()
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client("dr-91228-03", timeout=3):
            pass
    assert "certificate verify failed" in broker.process.log_text()
    async with broker.client("dr-91228-04"):
        pass  # others are still welcome


def test_acl_denies_revoked_before_patterns() -> None:
    acl = render_acl(BrokerIdentities(revoked=frozenset({"dr-91228-09"})))
    lines = acl.splitlines()
    deny = lines.index("topic deny dr/#")
    assert lines[deny - 1] == "user dr-91228-09"
    assert "pattern write dr/%u/enrolments" in lines
    assert "pattern read dr/%u/acks" in lines
    assert not any(line.startswith("pattern readwrite") for line in lines)


async def test_retained_and_queued_messages_survive_a_graceful_restart(
    broker: RunningBroker,
) -> None:
    state = topics.device_topic("dr-91228-01", topics.STATE)
    acks = topics.device_topic("dr-91228-01", topics.ACKS)
    # A persistent session for the device, then it goes away.
    session = {"clean_start": False, "properties": _session_expiry(3600)}
    async with broker.client("dr-91228-01", **session) as device:
        await device.subscribe(acks, qos=1)
        await device.publish(state, b"online", qos=1, retain=True)
    async with broker.client("central") as central:
        await central.publish(acks, b"queued-ack", qos=1)
    broker.restart()
    async with broker.client("dr-91228-01", **session) as device:
        # The queued ack arrives without resubscribing: the session survived the restart.
        message = await _receive_one(device)
        assert message.payload == b"queued-ack"
    async with broker.client("operator") as operator:
        await operator.subscribe(state, qos=1)
        message = await _receive_one(operator)
        assert message.payload == b"online"
        assert message.retain


async def test_operator_reads_over_websockets_with_its_password(broker: RunningBroker) -> None:
    state = topics.device_topic("dr-91228-01", topics.STATE)
    async with broker.client("dr-91228-01") as device:
        await device.publish(state, b"online", qos=1, retain=True)
    client = aiomqtt.Client(
        broker.host,
        broker.websockets_port,
        transport="websockets",
        protocol=aiomqtt.ProtocolVersion.V5,
        username="operator",
        password=broker.operator_password,
    )
    async with client:
        await client.subscribe(f"{topics.DEVICE_ROOT}/+/{topics.STATE}", qos=1)
        message = await _receive_one(client)
        assert message.payload == b"online"
    wrong = aiomqtt.Client(
        broker.host,
        broker.websockets_port,
        transport="websockets",
        protocol=aiomqtt.ProtocolVersion.V5,
        username="operator",
        password="wrong",
    )
    with pytest.raises(aiomqtt.MqttError):
        async with wrong:
            pass


def test_start_failure_reports_the_log(pki: TestPki, tmp_path: Path) -> None:
    first = MosquittoBroker(tmp_path / "a", ca=pki.ca, websockets=False)
    with first:
        clash = MosquittoBroker(tmp_path / "b", ca=pki.ca, port=first.port, websockets=False)
        with pytest.raises(RuntimeError, match="mosquitto exited"):
            clash.start()


def _session_expiry(seconds: int) -> object:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = seconds
    return properties
