"""The outbox against a model: random sequences of every operation, with a moving clock.

Hypothesis drives enqueue / mark_sent(_many) / mark_failed / mark_acked(_many) /
mark_rejected / clock advances / purge on a real SQLite file, and after each step checks that
what the outbox says (due rows, stats, counters) is what a plain-Python model of the
documented state machine says.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dr_contracts.enrolment import (
    EnrolmentRecord,
    FingerException,
    FingerRecord,
    RequestReason,
    new_enrolment_id,
)
from dr_contracts.envelope import seal_record
from dr_contracts.identifiers import request_number_for
from dr_contracts.keys import CentralDecryptionKey, SigningKey
from edge.biometrics.types import FingerPosition
from edge.queue import Backoff, Outbox, OutboxLimits, OutboxMeta
from tests.fixtures.queue import FakeClock

_CENTRAL = CentralDecryptionKey.generate()
_DEVICE = SigningKey.generate()
_LIMITS = OutboxLimits(
    min_free_disk_bytes=0,
    ack_timeout_s=30.0,
    receipt_retention_s=500.0,
    backoff=Backoff(initial_s=4.0, factor=2.0, maximum_s=60.0, jitter=0.5),
)
_SEED = 77


@dataclass
class ModelRow:
    state: str
    attempts: int
    next_at: float
    size: int
    closed_at: float | None = None


def _envelope(enrolment_id: str) -> bytes:
    record = EnrolmentRecord(
        enrolment_id=enrolment_id,
        prerequest_number="MODEL00001",
        device_id="dr-91228-01",
        agent_id="agent.model",
        started_at=datetime(2026, 6, 1, 9, 0, tzinfo=UTC),
        completed_at=datetime(2026, 6, 1, 9, 1, tzinfo=UTC),
        reason=RequestReason.RENEWAL,
        fingers=(
            FingerRecord(position=FingerPosition.RIGHT_INDEX, exception=FingerException.AMPUTATED),
        ),
    )
    return seal_record(record, recipient=_CENTRAL.public_key(), signer=_DEVICE)


class OutboxModel(RuleBasedStateMachine):
    @initialize()
    def open_outbox(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="outbox-model-"))
        self.clock = FakeClock()
        # NORMAL: this test is about the state machine, the durability tests are elsewhere.
        self.outbox = Outbox(
            self.directory / "o.db",
            limits=_LIMITS,
            clock=self.clock,
            rng=random.Random(_SEED),
            synchronous="NORMAL",
        )
        self.jitter = random.Random(_SEED)  # mirrors the outbox's draws
        self.rows: dict[str, ModelRow] = {}
        self.acked_total = 0
        self.rejected_total = 0
        self.numbers = 0

    def teardown(self) -> None:
        if hasattr(self, "outbox"):
            self.outbox.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.rows)))

    @rule()
    def enqueue(self) -> None:
        enrolment_id = new_enrolment_id()
        envelope = _envelope(enrolment_id)
        self.outbox.enqueue(enrolment_id, envelope, meta=OutboxMeta(prerequest_number="MODEL00001"))
        self.rows[enrolment_id] = ModelRow("pending", 0, self.clock.now, len(envelope))

    def _model_sent(self, enrolment_id: str) -> bool:
        row = self.rows[enrolment_id]
        if row.state in ("acked", "rejected"):
            return False
        row.state, row.attempts = "sent", row.attempts + 1
        row.next_at = self.clock.now + _LIMITS.ack_timeout_s
        return True

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def mark_sent(self, data: st.DataObject) -> None:
        enrolment_id = self._pick(data)
        assert self.outbox.mark_sent(enrolment_id) == self._model_sent(enrolment_id)

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def mark_sent_many(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.rows)), min_size=1, max_size=4))
        expected = [self._model_sent(i) for i in ids]
        assert self.outbox.mark_sent_many(ids) == expected

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def mark_failed(self, data: st.DataObject) -> None:
        enrolment_id = self._pick(data)
        row = self.rows[enrolment_id]
        expected = row.state not in ("acked", "rejected")
        if expected:
            delay = _LIMITS.backoff.delay(max(row.attempts, 1), self.jitter)
            row.state, row.next_at = "pending", self.clock.now + delay
        assert self.outbox.mark_failed(enrolment_id, "model failure") == expected

    def _model_acked(self, enrolment_id: str) -> bool:
        row = self.rows.get(enrolment_id)
        if row is None or row.state == "acked":
            return False
        row.state, row.closed_at = "acked", self.clock.now
        self.acked_total += 1
        return True

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def mark_acked(self, data: st.DataObject) -> None:
        enrolment_id = self._pick(data)
        self.numbers += 1
        expected = self._model_acked(enrolment_id)
        actual = self.outbox.mark_acked(
            enrolment_id, request_number=request_number_for(self.numbers)
        )
        assert actual == expected

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def mark_acked_many(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.rows)), min_size=1, max_size=4))
        acks = []
        for enrolment_id in ids:
            self.numbers += 1
            acks.append((enrolment_id, request_number_for(self.numbers), None))
        expected = [self._model_acked(i) for i in ids]
        assert self.outbox.mark_acked_many(acks) == expected

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def mark_rejected(self, data: st.DataObject) -> None:
        enrolment_id = self._pick(data)
        row = self.rows[enrolment_id]
        expected = row.state not in ("acked", "rejected")
        if expected:
            row.state, row.closed_at = "rejected", self.clock.now
            self.rejected_total += 1
        assert self.outbox.mark_rejected(enrolment_id, code="stamp_used") == expected

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0, 31.0, 120.0, 600.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def purge(self) -> None:
        cutoff = self.clock.now - _LIMITS.receipt_retention_s
        gone = [i for i, r in self.rows.items() if r.closed_at is not None and r.closed_at < cutoff]
        for enrolment_id in gone:
            del self.rows[enrolment_id]
        assert self.outbox.purge_expired_receipts() == len(gone)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "outbox"):
            return
        now = self.clock.now
        open_rows = {i: r for i, r in self.rows.items() if r.state in ("pending", "sent")}
        due = {i for i, r in open_rows.items() if r.next_at <= now}
        assert {r.enrolment_id for r in self.outbox.next_due(limit=1000)} == due
        stats = self.outbox.stats()
        assert stats.pending_count == len(open_rows)
        assert stats.pending_bytes == sum(r.size for r in open_rows.values())
        assert stats.in_flight_count == sum(r.state == "sent" for r in open_rows.values())
        assert stats.receipts_count == len(self.rows) - len(open_rows)
        assert stats.acked_total == self.acked_total
        assert stats.rejected_total == self.rejected_total


OutboxModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, database=None
)
test_outbox_agrees_with_its_model = OutboxModel.TestCase
