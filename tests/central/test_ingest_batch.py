"""Group commit (``ingest_batch``): refusals in the middle of a batch, rows taken meanwhile by
another transaction, and the per-enrolment savepoint path, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from central import service as service_module
from central.service import CentralService
from dr_contracts.acks import Ack
from dr_contracts.enrolment import RequestReason
from dr_contracts.rejections import Rejection, RejectionCode
from tests.fixtures.central import CentralKit

DEVICE = "dr-91228-01"
WAIT_S = 60.0


def _code(answer: object) -> RejectionCode:
    assert isinstance(answer, Rejection), f"expected a rejection, got {answer!r}"
    return answer.code


def _ack(answer: Ack | Rejection) -> Ack:
    assert isinstance(answer, Ack), f"expected an ack, got {answer!r}"
    return answer


def _count(service: CentralService, table: str) -> int:
    with service.store.transaction(write=False) as tx:
        row = tx.one(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


@pytest.fixture
def kit(central_kit: CentralKit) -> CentralKit:
    central_kit.add_device(DEVICE)
    return central_kit


def _spy_on_recording(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the ``careful`` flag of every batch recording attempt (the real one runs)."""
    calls: list[bool] = []
    real: Callable[..., Any] = CentralService._record_all

    def spy(self: CentralService, pending: Any, *, received_at: Any, careful: bool) -> Any:
        calls.append(careful)
        return real(self, pending, received_at=received_at, careful=careful)

    monkeypatch.setattr(CentralService, "_record_all", spy)
    return calls


def test_refusals_in_the_middle_leave_the_others_committed(
    kit: CentralKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_on_recording(monkeypatch)
    stamp = kit.service.create_stamp()
    loss, theft = (
        kit.prerequest(reason=RequestReason.LOSS),
        kit.prerequest(reason=RequestReason.THEFT),
    )
    first, second, third = kit.prerequest(), kit.prerequest(), kit.prerequest()
    record_first = kit.record(first)
    good_first = kit.seal(record_first)
    # Another enrolment under an id already used: a replay, refused.
    replay = kit.seal(kit.record(second, enrolment_id=record_first.enrolment_id))
    pays = kit.enrolment(loss, tax_stamp_number=stamp.number)
    pays_again = kit.enrolment(theft, tax_stamp_number=stamp.number)  # the same stamp
    no_stamp = kit.enrolment(kit.prerequest(reason=RequestReason.LOSS))
    batch = [
        (good_first, DEVICE),
        (pays, DEVICE),
        (no_stamp, DEVICE),
        (pays_again, DEVICE),
        (replay, DEVICE),
        (kit.enrolment(second), DEVICE),
        (good_first, DEVICE),  # delivered twice in one batch
        (kit.enrolment(third), DEVICE),
    ]
    answers = kit.service.ingest_batch(batch)
    assert [type(a).__name__ for a in answers] == [
        "Ack", "Ack", "Rejection", "Rejection", "Rejection", "Ack", "Ack", "Ack"
    ]  # fmt: skip
    assert _code(answers[2]) is RejectionCode.STAMP_REQUIRED
    assert _code(answers[3]) is RejectionCode.STAMP_USED
    assert _code(answers[4]) is RejectionCode.REPLAYED
    assert _ack(answers[0]).to_bytes() == _ack(answers[6]).to_bytes()
    assert calls == [False]  # settled without the savepoint path
    # Nothing doubled, nothing of the refused ones kept: 4 requests, each once.
    numbers = {_ack(a).request_number for a in answers if isinstance(a, Ack)}
    assert len(numbers) == 4
    assert sorted(kit.service.iter_request_numbers()) == sorted(numbers)
    for table in ("requests", "biometrics", "stage_history", "retention"):
        assert _count(kit.service, table) == 4, table
    used = kit.service.check_stamp(stamp.number, device_id=DEVICE)
    assert _code(used) is RejectionCode.STAMP_USED
    usable = kit.service.lookup_prerequest(theft.number, device_id=DEVICE)
    assert not isinstance(usable, Rejection)


def test_savepoint_path_gives_the_same_answers(
    kit: CentralKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    real: Callable[..., Any] = CentralService._record_all

    def unsettled_first(
        self: CentralService, pending: Any, *, received_at: Any, careful: bool
    ) -> Any:
        calls.append(careful)
        if not careful:  # as if optimism had met a row taken meanwhile (nothing written)
            raise service_module._UnsettledError
        return real(self, pending, received_at=received_at, careful=careful)

    monkeypatch.setattr(CentralService, "_record_all", unsettled_first)
    shared = kit.prerequest()
    first, clash, good = kit.enrolment(shared), kit.enrolment(shared), kit.enrolment()
    answers = kit.service.ingest_batch(
        [(first, DEVICE), (clash, DEVICE), (good, DEVICE), (first, DEVICE)]
    )
    assert calls == [False, True]
    assert _code(answers[1]) is RejectionCode.PREREQUEST_CONSUMED
    assert _ack(answers[0]).to_bytes() == _ack(answers[3]).to_bytes()
    assert _ack(answers[2]).request_number != _ack(answers[0]).request_number
    assert _count(kit.service, "requests") == 2


def _wait_for_lock_waiter(service: CentralService) -> None:
    """Until a PostgreSQL backend waits for a row lock (polled, bounded)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with service.store.transaction(write=False) as tx:
            row = tx.one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
        if row is not None and int(row[0]) > 0:
            return
    raise AssertionError("no backend came to wait for the row lock")


@pytest.mark.postgres
def test_row_taken_meanwhile_falls_back_to_savepoints(
    kit: CentralKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kit.service.store.dialect.name != "postgresql":
        pytest.skip("SQLite writers are serialised: nothing changes between read and write")
    calls = _spy_on_recording(monkeypatch)
    taken, other = kit.prerequest(), kit.prerequest()
    batch = [(kit.enrolment(taken), DEVICE), (kit.enrolment(other), DEVICE)]
    answers: list[Ack | Rejection] = []
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            answers.extend(kit.service.ingest_batch(batch))
        except BaseException as exc:
            errors.append(exc)

    # Another transaction consumes the pre-request after the batch has read it as usable:
    # the batch's conditional UPDATE waits for that row, then changes nothing.
    with kit.service.store.transaction() as holder:
        holder.execute(
            "UPDATE prerequests SET status = 'consumed' WHERE number = ?", (taken.number,)
        )
        worker = threading.Thread(target=ingest)
        worker.start()
        _wait_for_lock_waiter(kit.service)
    worker.join(timeout=WAIT_S)
    assert not worker.is_alive()
    assert not errors
    assert calls == [False, True]
    assert _code(answers[0]) is RejectionCode.PREREQUEST_CONSUMED
    ack = _ack(answers[1])
    assert list(kit.service.iter_request_numbers()) == [ack.request_number]
    assert _count(kit.service, "biometrics") == 1
