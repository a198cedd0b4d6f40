"""The one search for a test identity, in every form it could leak in.

A leak rarely looks like the value as typed: a name may be stored NFD, escaped
in JSON (``Nguy\\u1ec5n``), UTF-16 in SQLite, upper-cased in MRZ form
(``NGUYEN<<VAN<THU``); a document number may be the 12-digit ID or the chip's
9-digit number; a face is raw bytes in a msgpack ``bin`` or SQLite blob, or
base64 in JSON.  :class:`IdentitySearch` builds every such needle and searches
bytes, files (SQLite databases and their WAL included), log text and MQTT
messages for them.  :meth:`IdentitySearch.prove` plants each form in samples of
each kind first, so a search that finds nothing has shown it would have.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

#: Bytes of a face taken for a needle: long enough to be unique, short enough to survive slicing.
FACE_SLICE = 48


@dataclass(frozen=True)
class Identity:
    full_name: str
    id_number: str
    document_number: str
    mrz_name: str
    face: bytes = b""


#: The default simulated card's holder (wire-api-v1.md).
TEST_IDENTITY = Identity(
    full_name="Nguyễn Văn Thử",
    id_number="079099000123",
    document_number="099000123",
    mrz_name="NGUYEN<<VAN<THU",
)
#: What the chip QR on the back of the test identity's card holds: ID, old ID, name, birth,
#: sex, address, issue date (a scanned code that is identity data).
TEST_CARD_QR = (
    "079099000123|025123456|Nguyễn Văn Thử|15011990|Nam|"
    "123 Hậu Giang, Phường 6, Quận 6, Thành phố Hồ Chí Minh|20042021"
)


def _image_data_start(face: bytes) -> int:
    """Offset of a JPEG's entropy-coded data (after its SOS header), else ``FACE_SLICE``.

    A JPEG's headers (JFIF, quantization and Huffman tables) are the same in every
    picture an encoder writes at one quality: a slice of them would "find" any JPEG.
    """
    sos = face.find(b"\xff\xda") if face.startswith(b"\xff\xd8") else -1
    if sos == -1:
        return FACE_SLICE
    return max(FACE_SLICE, sos + 2 + int.from_bytes(face[sos + 2 : sos + 4], "big"))


def _face_needles(face: bytes) -> dict[str, bytes]:
    """Slices of the face's image data at its start, middle and end: a leak may hold part of it."""
    first = _image_data_start(face)
    if len(face) < first + 4 * FACE_SLICE:
        return {}
    found = {}
    for where, offset in (
        ("start", first),
        ("middle", len(face) // 2),
        ("end", len(face) - 2 * FACE_SLICE),
    ):
        # A slice starting at a multiple of 3 keeps its base64 aligned with the whole image's.
        start = offset // 3 * 3
        piece = face[start : start + FACE_SLICE]
        found[f"face bytes ({where})"] = piece
        found[f"face base64 ({where})"] = base64.b64encode(piece)[:-4]
        found[f"face base64url ({where})"] = base64.urlsafe_b64encode(piece)[:-4]
    return found


def needles(identity: Identity) -> dict[str, bytes]:
    """Every form of ``identity`` worth searching for, by name."""
    found: dict[str, bytes] = {}
    names = {
        "as typed": identity.full_name,
        "NFC": unicodedata.normalize("NFC", identity.full_name),
        "NFD": unicodedata.normalize("NFD", identity.full_name),
    }
    for form, text in names.items():
        found[f"name {form}"] = text.encode()
        found[f"name {form} JSON-escaped"] = json.dumps(text)[1:-1].encode()
        found[f"name {form} UTF-16"] = text.encode("utf-16-le")
    found["MRZ name"] = identity.mrz_name.encode()
    found["MRZ name, spaces"] = identity.mrz_name.replace("<<", " ").replace("<", " ").encode()
    found["ID number"] = identity.id_number.encode()
    found["document number"] = identity.document_number.encode()
    found["document number UTF-16"] = identity.document_number.encode("utf-16-le")
    found |= _face_needles(identity.face)
    return found


@dataclass
class IdentitySearch:
    """Search places for an identity; findings accumulate in :attr:`leaks`."""

    identity: Identity = TEST_IDENTITY
    leaks: list[str] = field(default_factory=list)

    def with_face(self, face: bytes) -> IdentitySearch:
        """The same search, also looking for ``face``."""
        identity = Identity(**{**vars(self.identity), "face": face})
        return IdentitySearch(identity)

    def find(self, blob: bytes) -> list[str]:
        """Names of the forms found in ``blob``."""
        return [name for name, needle in needles(self.identity).items() if needle in blob]

    def scan(self, where: str, blob: bytes) -> list[str]:
        """Search ``blob`` and record any finding against ``where``."""
        found = self.find(blob)
        self.leaks += [f"{where}: {name}" for name in found]
        return found

    def scan_text(self, where: str, text: str) -> list[str]:
        """Search log or other text."""
        return self.scan(where, text.encode("utf-8", "surrogatepass"))

    def scan_files(self, *roots: Path) -> list[Path]:
        """Search every file below ``roots`` (SQLite main, WAL and journal files alike)."""
        paths = [p for r in roots if r.exists() for p in sorted(r.rglob("*")) if p.is_file()]
        for path in paths:
            self.scan(str(path), path.read_bytes())
        return paths

    def scan_messages(self, where: str, messages: Iterable[tuple[str, bytes]]) -> int:
        """Search MQTT messages (topic, payload); returns how many were searched."""
        count = 0
        for topic, payload in messages:
            self.scan(f"{where} {topic}", topic.encode() + b"\0" + payload)
            count += 1
        return count

    def assert_clean(self) -> None:
        """Fail listing every finding."""
        assert not self.leaks, "identity data found:\n" + "\n".join(self.leaks)

    def prove(self, tmp_path: Path) -> None:
        """Plant every form in every kind of sample and check each is found; clean samples are not."""
        forms = needles(self.identity)
        assert forms, "no needles"
        identity = self.identity
        mrz_line = (
            f"IDVNM{identity.document_number}<0{identity.id_number}<<<\n{identity.mrz_name}<<<<"
        )
        samples: dict[str, bytes] = {
            "log line": f"INFO card: read {identity.full_name} {mrz_line}".encode(),
            "log line NFD": unicodedata.normalize("NFD", f"holder={identity.full_name}").encode(),
            "JSON ascii": json.dumps({"fullName": identity.full_name}).encode(),
            "msgpack": msgpack.packb({"n": identity.full_name, "d": identity.document_number}),
            "retained JSON": json.dumps({"id": identity.id_number}).encode(),
        }
        if identity.face:
            samples["msgpack bin face"] = msgpack.packb({"face": identity.face})
            samples["JSON base64 face"] = json.dumps(
                {"data": base64.b64encode(identity.face).decode()}
            ).encode()
            samples["url-safe base64 face"] = base64.urlsafe_b64encode(identity.face)
        planted = Path(tempfile.mkdtemp(prefix="planted-", dir=tmp_path))
        for encoding in ("UTF-8", "UTF-16le"):
            db = planted / f"{encoding}.sqlite3"
            with sqlite3.connect(db) as conn:
                conn.execute(f"PRAGMA encoding = '{encoding}'")
                conn.execute("CREATE TABLE t (name TEXT, doc TEXT, face BLOB)")
                conn.execute(
                    "INSERT INTO t VALUES (?, ?, ?)",
                    (
                        unicodedata.normalize("NFD", identity.full_name),
                        identity.document_number,
                        identity.face,
                    ),
                )
            conn.close()
            samples[f"SQLite {encoding}"] = db.read_bytes()
        wanted = {
            "log line": {"name as typed", "MRZ name", "ID number", "document number"},
            "log line NFD": {"name NFD"},
            "JSON ascii": {"name NFC JSON-escaped"},
            "msgpack": {"name as typed", "document number"},
            "retained JSON": {"ID number"},
            **{
                kind: {f"face {form} ({where})" for where in ("start", "middle", "end")}
                for kind, form in (
                    ("msgpack bin face", "bytes"),
                    ("JSON base64 face", "base64"),
                    ("url-safe base64 face", "base64url"),
                )
            },
            "SQLite UTF-8": {"name NFD", "document number"}
            | ({"face bytes (middle)"} if identity.face else set()),
            "SQLite UTF-16le": {"name NFD UTF-16", "document number UTF-16"},
        }
        probe = IdentitySearch(identity)
        for kind, blob in samples.items():
            missing = wanted[kind] - set(probe.find(blob))
            assert not missing, f"the search misses {sorted(missing)} in a planted {kind}"
        for clean in (
            b"INFO app: kioskd ready: board hcm-q6-0001",
            msgpack.packb({"state": "online", "seq": 99000122, "ts": 1_700_000_000_000}),
            json.dumps({"fullName": "Trần Thị Mai", "documentNumber": "001199012345"}).encode(),
        ):
            assert probe.find(clean) == [], clean
