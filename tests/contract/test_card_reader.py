"""cardReader contract: card presence events without contents, waitForCard, readIdentity."""

from __future__ import annotations

import io
import unicodedata

from PIL import Image

from tests.contract.support import (
    acked,
    check_description,
    device_info,
    events,
    failed,
    ok,
    start,
    state,
)
from tests.uiclient import UiClient

CONTRACT_CLASSES = ("cardReader",)
DEV = "cardReader"
#: The default simulated card's access key (wire API v1, "Simulators").
ACCESS_KEY = {
    "documentNumber": "079099000123",
    "dateOfBirth": "1990-01-15",
    "dateOfExpiry": "2030-01-15",
}
FULL_NAME = "Nguyễn Văn Thử"


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    await check_description(
        ui,
        DEV,
        "cardReader",
        drivers["cardReader"],
        {"waitForCard", "readIdentity", "chipIO"},
        {"cardPresented", "cardRemoved"},
    )
    current = await state(ui, DEV)
    assert current["state"] == "online"
    assert current["detail"]["media"] == "absent"


async def test_wait_for_card_completes_when_a_card_is_presented(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        wait = await acked(await start(ui, DEV, "waitForCard", {"timeoutMs": 3000}))
        assert wait.replies.empty()
        await ui.sim(DEV, "presentCard")
        result = ok(await wait.completion(2))
        assert isinstance(result["atr"], bytes)
        assert result["atr"]
        presented = await evt.next("cardPresented")
        assert presented["data"] == {}, "cardPresented carries no card contents"
        await state(ui, DEV, lambda s: s["detail"]["media"] == "present")

        # With a card already there it completes at once.
        assert ok(await ui.device(DEV, "waitForCard", {"timeoutMs": 500}))["atr"] == result["atr"]

        await ui.sim(DEV, "removeCard")
        removed = await evt.next("cardRemoved")
        assert removed["data"] == {}
        assert removed["seq"] > presented["seq"]
        await state(ui, DEV, lambda s: s["detail"]["media"] == "absent")


async def test_wait_for_card_ends_at_its_deadline_or_on_cancel(ui: UiClient) -> None:
    failed(await ui.device(DEV, "waitForCard", {"timeoutMs": 200}), "timeOut")
    wait = await acked(await start(ui, DEV, "waitForCard", {"timeoutMs": 5000}))
    assert ok(await ui.daemon("cancel"))["canceled"] == [wait.request_id]
    failed(await wait.completion(2), "canceled")


async def test_read_identity_returns_the_default_test_identity(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    read = await acked(await start(ui, DEV, "readIdentity", {"accessKey": ACCESS_KEY}))
    replies = await read.all_until_completion(5)
    identity = ok(replies[-1])

    progress = [r for r in replies[:-1] if r["type"] == "event"]
    assert progress, "readProgress events reach the requester"
    assert len(progress) == len(replies) - 1, "only events between the ack and the completion"
    finals: dict[str, tuple[int, int]] = {}
    for reply in progress:
        assert reply["requestId"] == read.request_id
        assert reply["event"] == "readProgress"
        data = reply["data"]
        assert 0 <= data["bytes"] <= data["total"], data
        assert data["bytes"] >= finals.get(data["file"], (0, 0))[0], "progress never goes back"
        finals[data["file"]] = (data["bytes"], data["total"])
    assert {"DG1", "DG2"} <= set(finals), finals
    assert all(done == total for done, total in finals.values()), finals

    mrz = identity["mrz"]
    assert mrz["documentNumber"] == "099000123"
    assert mrz["optionalData"] == "079099000123"
    assert mrz["dateOfBirth"] == "1990-01-15"
    assert mrz["dateOfExpiry"] == "2030-01-15"
    assert mrz["sex"] == "M"
    assert mrz["nationality"] == "VNM"
    assert mrz["issuingState"] == "VNM"
    assert mrz["surname"] == "NGUYEN"
    assert mrz["givenNames"] == "VAN THU"
    assert len(mrz["lines"]) == 3
    assert all(len(line) == 30 for line in mrz["lines"])

    dg13 = identity["dg13"]
    assert unicodedata.normalize("NFC", dg13["fullName"]) == FULL_NAME
    assert dg13["idNumber"] == "079099000123"
    assert dg13["dateOfBirth"] == "1990-01-15"

    face = identity["face"]
    assert face["mime"] == "image/jpeg"
    with Image.open(io.BytesIO(face["data"])) as portrait:
        assert portrait.format == "JPEG"
        portrait.load()

    assert set(identity["passiveAuth"]) == {"hashesValid", "signatureValid", "chainValid"}
    assert identity["passiveAuth"]["chainValid"] in (True, False, None)
    assert identity["issues"] == [], "a fully understood, verified read lists no issues"


async def test_a_dg13_the_reader_cannot_decode_is_an_issue_not_a_failure(ui: UiClient) -> None:
    """The MRZ and face still come back; DG13 is null and ``issues`` says why."""
    await ui.sim(DEV, "presentCard", {"card": "garbledDg13"})
    key = {
        "documentNumber": "036198003456",
        "dateOfBirth": "1998-04-09",
        "dateOfExpiry": "2038-04-09",
    }
    identity = ok(await ui.device(DEV, "readIdentity", {"accessKey": key}, timeout=5))
    assert identity["dg13"] is None
    assert identity["mrz"]["optionalData"] == "036198003456"
    assert identity["face"]["mime"] == "image/jpeg"
    assert identity["issues"] == [
        {
            "subject": "DG13",
            "status": "unreadable",
            "reason": "DG13: a text field is not valid text",
        }
    ]


async def test_read_identity_accepts_the_mrz_document_number(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    key = {**ACCESS_KEY, "documentNumber": "099000123"}
    identity = ok(await ui.device(DEV, "readIdentity", {"accessKey": key}, timeout=5))
    assert identity["mrz"]["documentNumber"] == "099000123"


async def test_wrong_access_key_is_a_user_error(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    for wrong in (
        {**ACCESS_KEY, "dateOfBirth": "1990-01-16"},
        {**ACCESS_KEY, "documentNumber": "079099000124"},
    ):
        read = await acked(await start(ui, DEV, "readIdentity", {"accessKey": wrong}))
        replies = await read.all_until_completion(5)
        failed(replies[-1], "userError")
        assert not any(
            r.get("event") == "readProgress" and r["data"]["file"] == "DG1" for r in replies
        )
    # The right key still opens it afterwards.
    ok(await ui.device(DEV, "readIdentity", {"accessKey": ACCESS_KEY}, timeout=5))


async def test_malformed_access_key_is_invalid_data(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    incomplete = {k: v for k, v in ACCESS_KEY.items() if k != "dateOfExpiry"}
    failed(await ui.device(DEV, "readIdentity", {"accessKey": incomplete}), "invalidData")
    bad_date = {**ACCESS_KEY, "dateOfBirth": "15/01/1990"}
    failed(await ui.device(DEV, "readIdentity", {"accessKey": bad_date}), "invalidData")
    failed(await ui.device(DEV, "readIdentity", {}), "invalidData")


async def test_read_identity_without_a_card_is_a_user_error(ui: UiClient) -> None:
    failed(await ui.device(DEV, "readIdentity", {"accessKey": ACCESS_KEY}), "userError")


async def test_card_removed_mid_read_fails_without_identity(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    read = await acked(await start(ui, DEV, "readIdentity", {"accessKey": ACCESS_KEY}))
    first = await read.next(3)
    assert first["type"] == "event", first
    assert first["event"] == "readProgress"
    await ui.sim(DEV, "removeCard")
    replies = await read.all_until_completion(3)
    completion = replies[-1]
    assert completion["completionCode"] != "success", completion
    assert completion.get("result") is None
    assert all(r["type"] == "event" for r in replies[:-1])
    await state(ui, DEV, lambda s: s["detail"]["media"] == "absent" and s["state"] == "online")


async def test_read_identity_is_canceled_by_its_requester(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    read = await acked(await start(ui, DEV, "readIdentity", {"accessKey": ACCESS_KEY}))
    assert (await read.next(3))["event"] == "readProgress"
    assert ok(await ui.daemon("cancel", {"requestIds": [read.request_id]}))["canceled"] == [
        read.request_id
    ]
    replies = await read.all_until_completion(3)
    failed(replies[-1], "canceled")
    # The card is still there and reads in full afterwards.
    ok(await ui.device(DEV, "readIdentity", {"accessKey": ACCESS_KEY}, timeout=5))


async def test_identity_is_never_replayed_for_a_repeated_request_id(ui: UiClient) -> None:
    await ui.sim(DEV, "presentCard")
    first = await ui.device(DEV, "readIdentity", {"accessKey": ACCESS_KEY}, request_id="id-1")
    assert ok(first)["mrz"]["documentNumber"] == "099000123"
    await ui.sim(DEV, "removeCard")
    again = await ui.device(DEV, "readIdentity", {"accessKey": ACCESS_KEY}, request_id="id-1")
    failed(again, "userError")


async def test_chip_io_follows_its_capability(ui: UiClient, technician: UiClient) -> None:
    enabled = (await device_info(ui, DEV))["capabilities"]["chipIO"]
    await ui.sim(DEV, "presentCard")
    select_emrtd = bytes.fromhex("00a4040c07a0000002471001")
    assert "technician role" in failed(
        await ui.device(DEV, "chipIO", {"apdu": select_emrtd}), "userError"
    )
    reply = await technician.device(DEV, "chipIO", {"apdu": select_emrtd})
    if enabled:
        assert ok(reply)["response"][-2:] == b"\x90\x00"
    else:
        failed(reply, "unsupportedCommand")
    failed(await technician.device(DEV, "chipIO", {"apdu": b"\x00"}), "invalidData")
