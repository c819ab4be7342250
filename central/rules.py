"""Content rules central applies to an opened enrolment record (pure, no database).

The record's own schema (types, sizes, one capture or one exception per finger) is already
checked by :meth:`dr_contracts.enrolment.EnrolmentRecord.from_bytes`. Here come the rules of
the CNI procedure:

- every template parses as an ISO/IEC 19794-2 record, has at least one view, and its view's
  finger position (when stated) is the record's;
- fingers: two captured fingers (at most two: a CNI holds two), or fewer with a documented
  exception for each missing one (captured + exceptions >= 2);
- under 12 on the day of the enrolment: no capture at all, each position marked ``under_age``;
  ``under_age`` is refused for anyone 12 or older;
- each captured finger carries its quality measures (the report behind the score).
"""

from __future__ import annotations

from datetime import date

from dr_contracts.enrolment import EnrolmentRecord, FingerException
from dr_contracts.rejections import RejectedError, RejectionCode
from edge.biometrics.iso19794 import TemplateFormatError, check_template
from edge.biometrics.types import FingerPosition

MIN_AGE_FOR_FINGERPRINTS = 12
REQUIRED_FINGERS = 2


def age_on(birth_date: date, day: date) -> int:
    """Age in whole years on ``day``."""
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - int(before_birthday)


def check_record(record: EnrolmentRecord, *, birth_date: date) -> None:
    """Raise :class:`RejectedError` with the first rule the record breaks."""
    check_content(record)
    check_fingers(record, birth_date=birth_date)


def check_content(record: EnrolmentRecord) -> None:
    """The rules that need only the record (templates, quality fields): central checks them
    before it takes any database lock."""
    _check_templates(record)
    for finger in record.captured_fingers:
        if finger.quality is None or not finger.quality.measures:
            raise RejectedError.of(
                RejectionCode.QUALITY_FIELDS,
                f"finger {finger.position.name} has no quality measures",
            )


def _check_templates(record: EnrolmentRecord) -> None:
    for finger in record.captured_fingers:
        assert finger.template is not None
        try:
            # The reader's checks without building every minutia (central stores templates,
            # it does not match them): same acceptance, same errors as decode_template.
            views = check_template(finger.template)
        except TemplateFormatError as exc:
            raise RejectedError.of(
                RejectionCode.INVALID_TEMPLATE,
                f"finger {finger.position.name}: {exc.field}: {exc.reason}",
            ) from None
        if not views:
            raise RejectedError.of(
                RejectionCode.INVALID_TEMPLATE, f"finger {finger.position.name}: no view"
            )
        for view in views:
            if view.position not in (FingerPosition.UNKNOWN, finger.position):
                raise RejectedError.of(
                    RejectionCode.INVALID_TEMPLATE,
                    f"template of {view.position.name} filed as {finger.position.name}",
                )


def check_fingers(record: EnrolmentRecord, *, birth_date: date) -> None:
    """The finger rules, which depend on the citizen's age (from the pre-request)."""
    captured = record.captured_fingers
    exceptions = [f.exception for f in record.fingers if f.exception is not None]
    under_age = age_on(birth_date, record.completed_at.date()) < MIN_AGE_FOR_FINGERPRINTS
    if under_age:
        if captured or any(e is not FingerException.UNDER_AGE for e in exceptions):
            raise RejectedError.of(
                RejectionCode.FINGER_RULES, "no fingerprints are taken under 12 (under_age only)"
            )
        return
    if FingerException.UNDER_AGE in exceptions:
        raise RejectedError.of(RejectionCode.FINGER_RULES, "under_age for a citizen 12 or older")
    if len(captured) > REQUIRED_FINGERS:
        raise RejectedError.of(
            RejectionCode.FINGER_RULES, f"{len(captured)} fingers captured, a CNI holds 2"
        )
    if len(captured) + len(exceptions) < REQUIRED_FINGERS:
        raise RejectedError.of(
            RejectionCode.FINGER_RULES,
            f"{len(captured)} captured and {len(exceptions)} exceptions, 2 needed",
        )
