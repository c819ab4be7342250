"""Logs are structured and never carry secrets, biometric or personal data."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from dr_contracts.logsetup import configure_logging, redact


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = configure_logging(fmt="json", stream=out, level="DEBUG")
    yield out
    logging.getLogger().removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_fields(stream: io.StringIO) -> None:
    logging.getLogger("edge.queue").info("enqueued %s", "enr-1", extra={"depth": 3})
    (entry,) = _lines(stream)
    assert entry["msg"] == "enqueued enr-1"
    assert entry["depth"] == 3
    assert entry["level"] == "info"
    assert entry["logger"] == "edge.queue"


def test_biometric_bytes_and_blobs_never_reach_the_log(stream: io.StringIO) -> None:
    template = os.urandom(300)
    log = logging.getLogger("edge.station")
    log.warning("template %s", template)
    log.warning("image %s", base64.b64encode(template).decode())
    log.warning("hex %s", template.hex(), extra={"payload": template})
    text = stream.getvalue()
    assert template.hex() not in text
    assert base64.b64encode(template).decode()[:60] not in text
    assert "<300 bytes>" in text


def test_keys_and_identifiers_are_masked(stream: io.StringIO) -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ\n-----END PRIVATE KEY-----"
    logging.getLogger("central").error(
        "key %s for %s stamp %s", pem, "AB12CD34EF", "1234567890123456"
    )
    text = stream.getvalue()
    assert "MC4CAQAwBQYDK2VwBCIEIJ" not in text
    assert "AB12CD34EF" not in text
    assert "AB********" in text
    assert "1234567890123456" not in text
    assert "1234********3456" in text


def test_plain_words_survive() -> None:
    assert redact("CONNECTED to broker dr-91228-01") == "CONNECTED to broker dr-91228-01"


def test_journal_format_has_syslog_priority() -> None:
    out = io.StringIO()
    handler = configure_logging(stream=out, environ={"JOURNAL_STREAM": "8:1234"})
    try:
        logging.getLogger("edge").error("sensor gone")
    finally:
        logging.getLogger().removeHandler(handler)
    assert out.getvalue().startswith('<3>level=error logger=edge msg="sensor gone"')


def test_mismatched_arguments_do_not_raise(stream: io.StringIO) -> None:
    logging.getLogger("x").info("%s and %s", "one")
    assert "did not match" in _lines(stream)[0]["msg"]  # type: ignore[operator]
