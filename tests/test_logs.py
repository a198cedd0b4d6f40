"""Logging: journald priorities, key=value context, redaction of identity data and secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from daemon import logs
from provisioning import pki
from tests.identity_search import TEST_IDENTITY, IdentitySearch


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.setup("debug", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_journald_priorities_and_context(captured: io.StringIO) -> None:
    log = logging.getLogger("kioskd.test")
    log.info("printer ready", extra={"device": "printer", "paper": "low"})
    log.warning("cover open")
    log.debug("poll")
    assert captured.getvalue().splitlines() == [
        "<6>kioskd.test: printer ready device=printer paper=low",
        "<4>kioskd.test: cover open",
        "<7>kioskd.test: poll",
    ]


def test_identity_and_secrets_never_reach_the_log(captured: io.StringIO) -> None:
    face = bytes(range(256)) * 8
    search = IdentitySearch().with_face(face)
    log = logging.getLogger("kioskd.test")
    identity = TEST_IDENTITY
    log.info("card %s, number %s", identity.id_number, identity.document_number)
    log.info("payload %r", {"fullName": identity.full_name, "face": face})
    log.error("bad MRZ %s", f"{identity.mrz_name}<<<<<<<<")
    log.info("connect password=%s", "hunter2-secret")
    log.info("key %s", pki.new_key().decode())
    try:
        raise ValueError({"documentNumber": identity.id_number, "data": face.hex()})
    except ValueError:
        log.exception("request failed")
    text = captured.getvalue()
    assert search.scan_text("log", text) == []
    assert "hunter2-secret" not in text
    assert "PRIVATE KEY-----\n" not in text
    assert "[redacted]" in text
    assert "request failed" in text
    assert "ValueError" in text


def test_redact_keeps_ordinary_lines() -> None:
    line = "kioskd 0.1.0 ready: board hcm-q6-0001, session 6ffba26d232e6cf6, 9 devices in 120 ms"
    assert logs.redact(line) == line
