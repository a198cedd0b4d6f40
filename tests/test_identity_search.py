"""The identity search proves itself on planted samples, with and without a face."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.identity_search import IdentitySearch


def test_proves_itself_without_a_face(tmp_path: Path) -> None:
    IdentitySearch().prove(tmp_path)


def test_proves_itself_with_a_face(tmp_path: Path) -> None:
    face = b"\xff\xd8\xff\xe0" + b"".join(hashlib.sha256(bytes([i])).digest() for i in range(200))
    search = IdentitySearch().with_face(face)
    search.prove(tmp_path)
    # the last 256 bytes of a picture, as a truncated log line might hold them
    assert search.scan("planted", b"x" + face[-256:]) == ["face bytes (end)"]
    assert search.leaks == ["planted: face bytes (end)"]
