"""The scanner's line decoder: terminators, partial lines, rejections."""

from __future__ import annotations

import pytest

from edge.drivers.scanner_codec import LineDecoder, LineRejected


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"], ids=["CR", "LF", "CRLF"])
def test_each_terminator_ends_a_line(eol: bytes) -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"AB12CD34EF" + eol + b"XYZ" + eol) == ["AB12CD34EF", "XYZ"]
    assert decoder.pending == 0


def test_crlf_split_across_reads_is_one_terminator() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"ONE\r") == ["ONE"]
    assert decoder.feed(b"\nTWO\r\n") == ["TWO"]


def test_empty_lines_are_ignored() -> None:
    assert LineDecoder().feed(b"\r\r\n\n\nA\n") == ["A"]


def test_partial_line_is_never_delivered() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"PARTIAL") == []
    assert decoder.pending == 7
    decoder.reset()
    assert decoder.feed(b"NEXT\n") == ["NEXT"]


def test_byte_by_byte() -> None:
    decoder = LineDecoder()
    out: list[str | LineRejected] = []
    for byte in b"QR-1\r\nQR-2\n":
        out += decoder.feed(bytes([byte]))
    assert out == ["QR-1", "QR-2"]


def test_over_long_line_rejected_then_decoding_resumes() -> None:
    decoder = LineDecoder(max_length=8)
    events = decoder.feed(b"0123456789ABCDEF\nOK\n")
    assert events == [LineRejected("longer than 8 bytes", 16), "OK"]


def test_over_long_line_across_reads() -> None:
    decoder = LineDecoder(max_length=4)
    assert decoder.feed(b"abcdef") == []
    assert decoder.feed(b"gh\r\nxy\r\n") == [LineRejected("longer than 4 bytes", 8), "xy"]


def test_binary_garbage_rejected() -> None:
    events = LineDecoder().feed(b"\x00\x01\x02\xff\nGOOD\n")
    assert isinstance(events[0], LineRejected)
    assert "binary" in events[0].reason
    assert events[1] == "GOOD"


def test_invalid_utf8_rejected_valid_utf8_kept() -> None:
    events = LineDecoder().feed(b"\xc3\x28\n" + "Évry 91228".encode() + b"\n")
    assert isinstance(events[0], LineRejected)
    assert events[1] == "Évry 91228"


def test_max_length_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        LineDecoder(max_length=0)
