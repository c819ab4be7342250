"""check_template: decode_template's checks without building minutiae; same verdicts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.biometrics.iso19794 import (
    RecordFormat,
    TemplateFormatError,
    ViewSummary,
    check_template,
    decode_template,
)
from edge.biometrics.types import FingerPosition

FIRST_MINUTIA = 28  # in the ISO example: view 0's 27 minutiae start here


def _verdict(call: object, data: bytes) -> tuple[str, str | None, int | None, str]:
    try:
        call(data)  # type: ignore[operator]
    except TemplateFormatError as error:
        return ("refused", error.field, error.offset, str(error))
    return ("accepted", None, None, "")


def test_summary_of_the_examples(iso_example: bytes, ansi_example: bytes) -> None:
    for example in (iso_example, ansi_example):
        record = decode_template(example)
        assert check_template(example) == tuple(
            ViewSummary(position=v.position, quality=v.quality, minutiae=len(v.minutiae))
            for v in record.views
        )
    assert check_template(iso_example)[0].position is FingerPosition(
        decode_template(iso_example).views[0].position
    )


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (FIRST_MINUTIA + 6 * 5, 0xC0, "finger view 0 minutia 5 type"),
        (FIRST_MINUTIA + 6 * 7 + 2, 0x40, "finger view 0 minutia 7 y"),
        (FIRST_MINUTIA + 6 * 26 + 5, 101, "finger view 0 minutia 26 quality"),
    ],
)
def test_the_first_bad_minutia_is_named(
    iso_example: bytes, offset: int, value: int, field: str
) -> None:
    data = bytearray(iso_example)
    data[offset] = value
    for call in (check_template, decode_template):
        with pytest.raises(TemplateFormatError) as caught:
            call(bytes(data), format=RecordFormat.ISO_19794_2_2005)
        assert caught.value.field == field


def test_truncation_inside_the_minutiae(iso_example: bytes) -> None:
    cut = iso_example[: FIRST_MINUTIA + 6 * 3 + 2]
    assert _verdict(check_template, cut) == _verdict(decode_template, cut)
    assert _verdict(check_template, cut)[1] == "finger view 0 minutia 3"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_same_verdict_as_decode_template(
    iso_example: bytes, ansi_example: bytes, data: st.DataObject
) -> None:
    mutated = bytearray(data.draw(st.sampled_from([iso_example, ansi_example])))
    for _ in range(data.draw(st.integers(0, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    sample = bytes(mutated[: max(cut, len(mutated) // 2)])
    assert _verdict(check_template, sample) == _verdict(decode_template, sample)
