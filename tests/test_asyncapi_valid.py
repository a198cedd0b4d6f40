"""docs/asyncapi.json passes the official AsyncAPI parser, as client authors check it.

The validator is a locked npm project (tests/asyncapi: @asyncapi/parser, the library
behind ``asyncapi validate``) that ``./dev setup`` installs with ``npm ci``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.api import asyncapi

VALIDATOR = Path(__file__).parent / "asyncapi"
DOCUMENT = asyncapi.DOCS / "asyncapi.json"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the official AsyncAPI parser runs on Node.js")
    if not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the AsyncAPI validator is not installed: run ./dev setup")
    return subprocess.run(
        [node, str(VALIDATOR / "validate.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_official_parser_accepts_the_api_document() -> None:
    run = _validate(DOCUMENT)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "valid: 0 errors, 0 warnings" in run.stdout, report


def test_validator_reports_errors(tmp_path: Path) -> None:
    """A channel parameter left undescribed (the v1 document's old defect) is an error."""
    doc = json.loads(asyncapi.asyncapi_text())
    del doc["channels"]["reply"]["parameters"]["suffix"]
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    run = _validate(broken)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "error asyncapi3-channel-parameters at channels.reply.parameters" in run.stdout
    assert "Missed: suffix" in run.stdout
