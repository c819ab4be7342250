"""The pure fleet model: states, telemetry, counts and threshold alerts, on a hand-moved clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from central.dashboard.departments import department_of
from central.dashboard.model import FleetModel, Thresholds
from dr_contracts.messages import DeviceState, Telemetry

T0 = 1_800_000_000.0  # a fixed instant; the hour bucket starts at T0 - T0 % 3600


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _state(status: str, session: bytes = b"s" * 16) -> DeviceState:
    return DeviceState(
        status="online" if status == "online" else "offline", session=session, version="1.2.0"
    )


def _telemetry(**overrides: object) -> Telemetry:
    fields: dict[str, object] = {
        "queue_depth": 0,
        "queue_bytes": 0,
        "oldest_pending_age_s": None,
        "sensor": "ready",
        "version": "1.2.0",
        "disk_free_bytes": 40 << 30,
    }
    fields.update(overrides)
    return Telemetry(**fields)  # type: ignore[arg-type]


def _kinds(model: FleetModel) -> list[tuple[str, str]]:
    return [(a.kind, a.device_id) for a in model.alerts()]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def model(clock: Clock) -> FleetModel:
    return FleetModel(
        thresholds=Thresholds(
            offline_after_s=60, silent_after_s=120, backlog_depth=5, pending_age_s=600
        ),
        clock=clock,
    )


@pytest.mark.parametrize(
    ("device_id", "department"),
    [("dr-91228-01", "91"), ("dr-2A004-02", "2A"), ("dr-97302-01", "973"), ("kiosk-1", "?")],
)
def test_department_from_device_id(device_id: str, department: str) -> None:
    assert department_of(device_id) == department


def test_offline_alert_only_after_threshold(model: FleetModel, clock: Clock) -> None:
    model.on_state("dr-91228-01", _state("online"), sent_at_ms=1)
    assert model.devices["dr-91228-01"].status == "online"
    model.on_state("dr-91228-01", _state("offline"), sent_at_ms=2)
    assert model.snapshot()["summary"]["offline"] == 1
    clock.now += 60
    assert _kinds(model) == []
    clock.now += 1
    assert _kinds(model) == [("offline", "dr-91228-01")]
    model.on_state("dr-91228-01", _state("online", b"t" * 16), sent_at_ms=3)
    assert _kinds(model) == []


def test_old_sessions_will_does_not_override_new_connection(model: FleetModel) -> None:
    view = model._device("dr-91228-01")
    model.on_state("dr-91228-01", _state("online", b"n" * 16), sent_at_ms=2_000)
    # The will of the previous connection, signed when it connected, arrives late.
    model.on_state("dr-91228-01", _state("offline", b"o" * 16), sent_at_ms=1_000)
    assert [view.status, view.session] == ["online", b"n" * 16]
    # The current connection's own will is applied even though signed at connect time.
    model.on_state("dr-91228-01", _state("offline", b"n" * 16), sent_at_ms=2_000)
    assert [view.status, view.session] == ["offline", b"n" * 16]


def test_backlog_and_pending_age_alerts(model: FleetModel, clock: Clock) -> None:
    model.on_state("dr-91228-01", _state("online"), sent_at_ms=1)
    model.on_telemetry(
        "dr-91228-01", _telemetry(queue_depth=5, oldest_pending_age_s=500), sent_at_ms=2
    )
    assert _kinds(model) == []
    model.on_telemetry(
        "dr-91228-01", _telemetry(queue_depth=6, oldest_pending_age_s=500), sent_at_ms=3
    )
    assert _kinds(model) == [("backlog", "dr-91228-01")]
    # The oldest row keeps ageing between telemetry reports.
    clock.now += 101
    assert model.pending_age(model.devices["dr-91228-01"], now=clock.now) == 601
    assert ("stale_queue", "dr-91228-01") in _kinds(model)


def test_out_of_order_telemetry_is_ignored(model: FleetModel) -> None:
    model.on_telemetry("dr-91228-01", _telemetry(queue_depth=9), sent_at_ms=10)
    model.on_telemetry("dr-91228-01", _telemetry(queue_depth=1), sent_at_ms=5)
    assert model.devices["dr-91228-01"].queue_depth == 9


def test_silent_disk_and_sensor_alerts(model: FleetModel, clock: Clock) -> None:
    model.on_state("dr-91228-01", _state("online"), sent_at_ms=1)
    model.on_telemetry(
        "dr-91228-01", _telemetry(sensor="error", disk_free_bytes=1 << 20), sent_at_ms=2
    )
    assert _kinds(model) == [("disk", "dr-91228-01"), ("sensor", "dr-91228-01")]
    clock.now += 121
    assert ("silent", "dr-91228-01") in _kinds(model)


def test_repeated_rejections_alert_within_window(clock: Clock) -> None:
    model = FleetModel(
        thresholds=Thresholds(rejections_max=3, rejections_window_s=100), clock=clock
    )
    for _ in range(2):
        model.on_rejection("dr-91228-01", "message_bad_signature")
    assert _kinds(model) == []
    clock.now += 101  # the first two leave the window
    model.on_rejection("dr-91228-01", "bad_signature")
    assert _kinds(model) == []
    model.on_rejection("dr-91228-01", "bad_signature")
    model.on_rejection("dr-91228-01", "bad_signature")
    assert _kinds(model) == [("rejections", "dr-91228-01")]
    assert model.rejections == {"message_bad_signature": 2, "bad_signature": 3}


def test_revoked_devices_raise_no_alerts(model: FleetModel, clock: Clock) -> None:
    model.on_state("dr-91228-01", _state("offline"), sent_at_ms=1)
    model.set_registry({"dr-91228-01": "revoked", "dr-13055-01": "active"})
    clock.now += 3600
    assert _kinds(model) == []
    assert {d["id"]: d["registry"] for d in model.snapshot()["devices"]} == {
        "dr-13055-01": "active",
        "dr-91228-01": "revoked",
    }


def test_enrolments_per_hour_and_department_counted_once(model: FleetModel, clock: Clock) -> None:
    now = datetime.fromtimestamp(clock.now, UTC)
    earlier = datetime.fromtimestamp(clock.now - 3600, UTC)
    model.on_enrolment_acked("dr-91228-01", "e1", at=now)
    model.on_enrolment_acked("dr-91228-01", "e1", at=now)  # a re-sent enrolment, same ack
    model.on_enrolment_acked("dr-91001-02", "e2", at=earlier)
    model.on_enrolment_acked("dr-13055-01", "e3", at=now)
    model.on_enrolment_acked(
        "dr-13055-01", "old", at=datetime.fromtimestamp(clock.now - 86400, UTC)
    )
    hourly = model.hourly()
    assert len(hourly) == 24
    assert hourly[-1]["departments"] == {"13": 1, "91": 1}
    assert hourly[-2]["total"] == 1
    assert model.by_department() == {"13": 1, "91": 2}
    clock.now += 23 * 3600  # the earlier hour leaves the 24-hour window
    assert model.by_department() == {"13": 1, "91": 1}


def test_version_moves_only_on_change(model: FleetModel) -> None:
    model.set_request_stages({"received": 2})
    version = model.version
    model.set_request_stages({"received": 2})
    assert model.version == version
    model.set_request_stages({"received": 3})
    assert model.version == version + 1


def test_snapshot_is_json_with_ids_counts_and_codes_only(model: FleetModel) -> None:
    model.on_state("dr-91228-01", _state("online"), sent_at_ms=1)
    model.on_telemetry("dr-91228-01", _telemetry(queue_depth=7), sent_at_ms=2)
    model.on_enrolment_acked("dr-91228-01", "enrolment-1", at=datetime.fromtimestamp(T0, UTC))
    text = json.dumps(model.snapshot())
    assert "enrolment-1" not in text  # enrolment ids are not shown either
    snapshot = json.loads(text)
    assert snapshot["devices"][0]["queue_depth"] == 7
    assert snapshot["alerts"][0]["kind"] == "backlog"
    assert "dossiers en attente" in snapshot["alerts"][0]["message"]


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="offline_after_s"):
        Thresholds(offline_after_s=-1)
    with pytest.raises(ValueError, match="backlog_depth"):
        Thresholds(backlog_depth=0)
