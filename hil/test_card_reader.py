"""cardReader: the test card is seen, and ``readIdentity`` reads it with its BAC key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import msgspec

from hil.rig import SIM, Hands, Rig
from hil.wire import expect_event, ok
from tests.uiclient import Received, UiClient

#: The default test identity (wire-api-v1.md, "Simulators"); a real rig needs a test card
#: holding the same identity.
ACCESS_KEY = {
    "documentNumber": "079099000123",
    "dateOfBirth": "1990-01-15",
    "dateOfExpiry": "2030-01-15",
}
ID_NUMBER = "079099000123"
FULL_NAME = "Nguyễn Văn Thử"
SECRETS = (ID_NUMBER[-9:].encode(), FULL_NAME.encode())


async def test_present_card_and_read_identity(rig: Rig, ui: UiClient, hands: Hands) -> None:
    reader = rig.device("cardReader")
    hands.need(reader.id)
    patience = hands.patience(reader.id, 10)
    # Everything broadcast under dev/ while the card is read: none of it may carry identity.
    async with (
        ui.subscription(f"{ui.root}/dev/{reader.id}/evt/+") as events,
        ui.subscription(f"{ui.root}/dev/#") as broadcast,
    ):
        await hands.do(
            reader.id,
            "presentCard",
            {},
            prompt=f"Place the test citizen card ({FULL_NAME}, {ID_NUMBER}) on the card reader",
        )
        presented = await expect_event(events, "cardPresented", patience)
        assert presented == {}, f"cardPresented carries no card contents: {presented}"
        try:
            reading = await ui.start(
                f"{ui.root}/dev/{reader.id}/cmd/readIdentity", {"accessKey": ACCESS_KEY}
            )
            replies = await reading.all_until_completion(30)
        finally:
            await hands.do(reader.id, "removeCard", prompt="Take the card off the card reader")
            await expect_event(events, "cardRemoved", patience)

    result = ok(replies[-1])
    assert replies[0]["type"] == "ack", replies[0]
    progress = [r for r in replies if r["type"] == "event"]
    assert progress, "readIdentity sends readProgress events"
    assert {r["event"] for r in progress} == {"readProgress"}
    assert {"DG1", "DG2"} <= {r["data"]["file"] for r in progress}

    mrz = result["mrz"]
    assert mrz["documentNumber"] == ID_NUMBER[-9:], mrz
    assert (mrz["dateOfBirth"], mrz["dateOfExpiry"]) == ("1990-01-15", "2030-01-15"), mrz
    assert mrz["nationality"] == "VNM"
    assert mrz["issuingState"] == "VNM"
    assert mrz["sex"] == "M"
    assert result["dg13"] is not None, "the citizen card has DG13"
    assert result["dg13"]["idNumber"] == ID_NUMBER
    assert result["dg13"]["fullName"] == FULL_NAME
    face = result["face"]
    assert face["mime"] in ("image/jpeg", "image/jp2"), face["mime"]
    assert isinstance(face["data"], bytes)
    assert len(face["data"]) > 1000
    passive = result["passiveAuth"]
    assert passive["hashesValid"] is True, passive
    assert passive["signatureValid"] is True, passive
    issues = result.get("issues", [])
    assert all({"subject", "status", "reason"} <= set(issue) for issue in issues), issues
    if face["mime"] == "image/jp2":
        assert face.get("displayJpeg"), "a JPEG 2000 portrait comes with a JPEG for display"
    if hands.of(reader.id) == SIM:
        assert face["data"].startswith(b"\xff\xd8"), "the simulated portrait is a JPEG"
        assert issues == [], "the simulated card is fully understood and verified"

    # dev/# also holds our own request (with the access key): judge what the daemon published.
    published = [m for m in _drain(broadcast) if "/evt/" in m.topic or m.topic.endswith("/state")]
    assert published, "the broadcast subscription saw the card events"
    leaked = [
        m.topic for m in published if any(s in msgspec.json.encode(m.payload) for s in SECRETS)
    ]
    assert not leaked, f"identity data broadcast on {leaked}"


def _drain(queue: asyncio.Queue[Received]) -> Iterator[Received]:
    while not queue.empty():
        yield queue.get_nowait()
