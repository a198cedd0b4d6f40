"""Logging for journald, with a redaction filter as defence in depth.

Under systemd (``JOURNAL_STREAM`` set) each line starts with its syslog
priority (``<3>``, ``<4>``, ``<6>``, ``<7>``: sd-daemon(3)), so ``journalctl -p
warning`` works without a journald library; journald adds time and unit.
Keyword context passed as ``extra={"device": "printer"}`` is appended as
``key=value`` pairs, which ``journalctl -g`` can search.

Identity data must never be logged; the code does not log it.  Should a
message carry it anyway (an exception quoting a payload, say), the filter
replaces what looks like it before any handler writes: 12- and 9-digit ID and
document numbers, MRZ text, long base64 runs (photos), the values of identity
and secret keys (``fullName``, ``accessKey``, ``password``, ...) and PEM keys.
"""

from __future__ import annotations

import logging
import os
import re
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
#: Record attributes that are not the caller's ``extra`` context.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_SENSITIVE_KEYS = (
    "fullName|name|dateOfBirth|dateOfExpiry|documentNumber|idNumber|accessKey|can|mrz|dg1|dg2"
    "|dg13|face|photo|picture|image|data|text|address|placeOfOrigin|password|passwd|secret"
    "|token|key"
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
        ),
        "[private key]",
    ),
    (
        re.compile(
            rf"""(?P<k>["']?\b(?:{_SENSITIVE_KEYS})\b["']?\s*[:=]\s*)"""
            r"""(?P<v>b?"[^"]*"|b?'[^']*'|\{[^}]*\}|[^\s,;}]+)"""
        ),
        r"\g<k>[redacted]",
    ),
    (re.compile(r"[A-Za-z0-9+/]{64,}={0,2}"), "[blob]"),
    (re.compile(r"\b[A-Z0-9]*<[A-Z0-9<]{3,}"), "[mrz]"),
    (re.compile(r"(?<![\d.])\d{12}(?![\d.])|(?<![\d.])\d{9}(?![\d.])"), "[number]"),
)


def redact(text: str) -> str:
    """``text`` with identity data and secrets replaced by placeholders."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactionFilter(logging.Filter):
    """Rewrites each record's message (and exception text) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JournalFormatter(logging.Formatter):
    """``<priority>name: message key=value ...`` for journald, or ``LEVEL name: ...`` on a tty."""

    def __init__(self, *, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        """One line per record (exception text follows on the next lines)."""
        context = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        )
        head = f"<{_PRIORITY.get(record.levelno, 6)}>" if self.journal else f"{record.levelname} "
        line = f"{head}{record.name}: {record.getMessage()}"
        if context:
            line += f" {context}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return redact(line)


def setup(level: str, stream: object = None) -> logging.Handler:
    """Configure the root logger: one stderr handler with redaction; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(JournalFormatter(journal=bool(os.environ.get("JOURNAL_STREAM"))))
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
