"""The staged-release sample: stable, nested as it grows, about the size asked for."""

from __future__ import annotations

import hashlib

from typer.testing import CliRunner

from daemon.cli import app
from daemon.fleet.stage import bucket, in_sample

BOARDS = [f"hcm-q{q}-{n:04d}" for q in range(1, 13) for n in range(1, 41)]  # 480 boards


def test_sample_is_nested_and_close_to_the_percentage() -> None:
    ten = {b for b in BOARDS if in_sample(b, 10)}
    fifty = {b for b in BOARDS if in_sample(b, 50)}
    assert ten <= fifty
    assert 30 <= len(ten) <= 70  # 48 expected
    assert 200 <= len(fifty) <= 280  # 240 expected
    assert not any(in_sample(b, 0) for b in BOARDS)
    assert all(in_sample(b, 100) for b in BOARDS)


def test_bucket_is_sha256_of_the_id() -> None:
    # The rule docs/updates.md gives, computed independently here.
    digest = hashlib.sha256(b"hcm-q6-0001").hexdigest()
    assert bucket("hcm-q6-0001") == int(digest[:16], 16) % 100


def test_cli_prints_the_sample_from_stdin() -> None:
    result = CliRunner().invoke(
        app, ["fleet", "sample", "--percent", "50"], input="\n".join(BOARDS)
    )
    assert result.exit_code == 0, result.output
    assert result.output.split() == [b for b in BOARDS if in_sample(b, 50)]
