"""Which finger to capture next, how many attempts, and when a finger counts as captured.

Pure logic, no I/O: the workflow feeds it attempt outcomes and persists its state as JSON.

The rules (issue 7, step 4):

- two fingers, flat, one per *slot*: slot 1 prefers the right index, slot 2 the left index;
- a slot falls back to the middle, then the ring finger of the same hand, then the middle and
  ring fingers of the other hand (never a finger that is already captured or excepted);
- up to ``attempts`` captures per finger; a finger is captured once two of its captures of
  sufficient quality match each other, and the best of those is kept;
- a finger with no such pair after the last attempt gets the exception
  ``unreadable_after_retries``; the agent may declare ``amputated``, ``bandaged_injured`` or
  ``physically_unable`` for the finger being captured;
- a finger that matches the other slot's captured finger is refused (the same finger
  presented twice) and its attempts are discarded;
- under the minimum age no finger is captured at all: both index fingers get ``under_age``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dr_contracts.enrolment import FingerException
from edge.biometrics.types import FingerPosition

P = FingerPosition

SLOT_CANDIDATES: tuple[tuple[FingerPosition, ...], ...] = (
    (P.RIGHT_INDEX, P.RIGHT_MIDDLE, P.RIGHT_RING, P.LEFT_MIDDLE, P.LEFT_RING),
    (P.LEFT_INDEX, P.LEFT_MIDDLE, P.LEFT_RING, P.RIGHT_MIDDLE, P.RIGHT_RING),
)

FINGER_NAMES_FR: dict[FingerPosition, str] = {
    P.RIGHT_THUMB: "pouce droit",
    P.RIGHT_INDEX: "index droit",
    P.RIGHT_MIDDLE: "majeur droit",
    P.RIGHT_RING: "annulaire droit",
    P.RIGHT_LITTLE: "auriculaire droit",
    P.LEFT_THUMB: "pouce gauche",
    P.LEFT_INDEX: "index gauche",
    P.LEFT_MIDDLE: "majeur gauche",
    P.LEFT_RING: "annulaire gauche",
    P.LEFT_LITTLE: "auriculaire gauche",
    P.UNKNOWN: "doigt inconnu",
}


EXCEPTIONS_FR: dict[FingerException, str] = {
    FingerException.AMPUTATED: "Doigt amputé ou absent",
    FingerException.BANDAGED_INJURED: "Doigt blessé ou sous pansement",
    FingerException.PHYSICALLY_UNABLE: "Impossible de poser le doigt (handicap, tremblement)",
    FingerException.UNREADABLE_AFTER_RETRIES: "Empreinte illisible après plusieurs essais",
    FingerException.UNDER_AGE: "Demandeur de moins de 12 ans : pas de relevé d'empreintes",
}

# What an agent may declare; the two others are set by the policy itself.
AGENT_EXCEPTIONS = (
    FingerException.AMPUTATED,
    FingerException.BANDAGED_INJURED,
    FingerException.PHYSICALLY_UNABLE,
)


class Outcome(StrEnum):
    """What one attempt led to."""

    RETRY = "retry"  # capture again the same finger
    CAPTURED = "captured"  # this finger is done
    FAILED = "failed"  # attempts exhausted: exception recorded, next finger
    SAME_FINGER = "same_finger"  # matches the other slot's finger: attempts discarded


@dataclass(slots=True)
class Attempt:
    capture_id: str
    quality: int
    matches: list[str] = field(default_factory=list)  # capture ids of this finger it matches

    def to_json(self) -> dict[str, Any]:
        return {"capture_id": self.capture_id, "quality": self.quality, "matches": self.matches}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(str(data["capture_id"]), int(data["quality"]), list(data["matches"]))


@dataclass(slots=True)
class FingerRecord:
    position: FingerPosition
    attempts: list[Attempt] = field(default_factory=list)
    kept: str | None = None  # capture id of the kept capture once captured
    exception: FingerException | None = None

    @property
    def done(self) -> bool:
        return self.kept is not None or self.exception is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "position": int(self.position),
            "attempts": [a.to_json() for a in self.attempts],
            "kept": self.kept,
            "exception": None if self.exception is None else str(self.exception),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FingerRecord:
        exc = data.get("exception")
        return cls(
            FingerPosition(int(data["position"])),
            [Attempt.from_json(a) for a in data["attempts"]],
            data.get("kept"),
            None if exc is None else FingerException(exc),
        )


@dataclass(slots=True)
class FingerPlan:
    """The state of step 4 for one session."""

    attempts_per_finger: int
    min_quality: int
    fingers: dict[FingerPosition, FingerRecord] = field(default_factory=dict)
    slots: list[FingerPosition | None] = field(default_factory=lambda: [None, None])
    under_age: bool = False

    @classmethod
    def new(cls, *, attempts_per_finger: int, min_quality: int, under_age: bool) -> FingerPlan:
        plan = cls(attempts_per_finger, min_quality, under_age=under_age)
        if under_age:
            for slot, candidates in enumerate(SLOT_CANDIDATES):
                record = FingerRecord(candidates[0], exception=FingerException.UNDER_AGE)
                plan.fingers[record.position] = record
                plan.slots[slot] = record.position
        return plan

    # -- queries ---------------------------------------------------------------------------
    def _slot_done(self, slot: int) -> bool:
        position = self.slots[slot]
        if position is not None and self.fingers[position].kept is not None:
            return True
        if self.under_age:
            return True
        return self._next_candidate(slot) is None and (
            position is None or self.fingers[position].done
        )

    def _next_candidate(self, slot: int) -> FingerPosition | None:
        for position in SLOT_CANDIDATES[slot]:
            record = self.fingers.get(position)
            if record is None or not record.done:
                if record is None and any(p == position for p in self.slots if p is not None):
                    continue
                return position
        return None

    def current(self) -> tuple[int, FingerPosition] | None:
        """(slot, finger) to capture now, or None when step 4 is complete."""
        for slot in range(len(SLOT_CANDIDATES)):
            if self._slot_done(slot):
                continue
            position = self.slots[slot]
            if position is None or self.fingers[position].done:
                position = self._next_candidate(slot)
                if position is None:
                    continue
                self.slots[slot] = position
                self.fingers.setdefault(position, FingerRecord(position))
            return slot, position
        return None

    @property
    def complete(self) -> bool:
        return self.current() is None

    def captured(self) -> list[FingerRecord]:
        return [r for r in self.fingers.values() if r.kept is not None]

    def exceptions(self) -> list[FingerRecord]:
        return [r for r in self.fingers.values() if r.exception is not None]

    def other_captured(self, position: FingerPosition) -> list[FingerRecord]:
        return [r for r in self.captured() if r.position != position]

    # -- transitions ------------------------------------------------------------------------
    def add_attempt(
        self, position: FingerPosition, attempt: Attempt, *, same_as_other: bool
    ) -> Outcome:
        """Record one capture of ``position`` and say what follows.

        ``attempt.matches`` lists the earlier captures of this finger that it matches;
        ``same_as_other`` says whether it matches a finger already captured in another slot.
        """
        current = self.current()
        if current is None or current[1] != position:
            raise ValueError(f"{position!r} is not the finger to capture now")
        record = self.fingers[position]
        if same_as_other:
            record.attempts.clear()
            return Outcome.SAME_FINGER
        for earlier in record.attempts:
            if earlier.capture_id in attempt.matches:
                earlier.matches.append(attempt.capture_id)
        record.attempts.append(attempt)
        good = [a for a in record.attempts if a.quality >= self.min_quality and a.matches]
        good = [
            a
            for a in good
            if any(self._quality_of(record, m) >= self.min_quality for m in a.matches)
        ]
        if good:
            record.kept = max(good, key=lambda a: a.quality).capture_id
            return Outcome.CAPTURED
        if len(record.attempts) >= self.attempts_per_finger:
            record.exception = FingerException.UNREADABLE_AFTER_RETRIES
            return Outcome.FAILED
        return Outcome.RETRY

    @staticmethod
    def _quality_of(record: FingerRecord, capture_id: str) -> int:
        for a in record.attempts:
            if a.capture_id == capture_id:
                return a.quality
        return -1

    def declare_exception(self, position: FingerPosition, code: FingerException) -> None:
        current = self.current()
        if current is None or current[1] != position:
            raise ValueError(f"{position!r} is not the finger to capture now")
        record = self.fingers[position]
        record.exception = code
        record.kept = None

    def redo(self) -> None:
        """Forget every capture and exception (the agent starts step 4 again)."""
        under_age = self.under_age
        fresh = FingerPlan.new(
            attempts_per_finger=self.attempts_per_finger,
            min_quality=self.min_quality,
            under_age=under_age,
        )
        self.fingers, self.slots = fresh.fingers, fresh.slots

    # -- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "attempts_per_finger": self.attempts_per_finger,
            "min_quality": self.min_quality,
            "under_age": self.under_age,
            "fingers": [r.to_json() for r in self.fingers.values()],
            "slots": [None if p is None else int(p) for p in self.slots],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FingerPlan:
        plan = cls(
            int(data["attempts_per_finger"]),
            int(data["min_quality"]),
            under_age=bool(data["under_age"]),
        )
        for item in data["fingers"]:
            record = FingerRecord.from_json(item)
            plan.fingers[record.position] = record
        plan.slots = [None if p is None else FingerPosition(int(p)) for p in data["slots"]]
        return plan

    def capture_ids(self) -> set[str]:
        return {a.capture_id for r in self.fingers.values() for a in r.attempts}
