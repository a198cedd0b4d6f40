"""printer contract: slips as printed (``sim/printer/out/slip``), paper and cover conditions."""

from __future__ import annotations

import asyncio
import io

import zxingcpp
from PIL import Image

from tests.contract.support import (
    acked,
    check_description,
    device_info,
    drain,
    events,
    failed,
    ok,
    outputs,
    start,
    state,
    wait_status,
)
from tests.uiclient import Received, UiClient

CONTRACT_CLASSES = ("printer",)
DEV = "printer"
DOSSIER = "000.00.12.H29-260314-0042"
FIELDS = {
    "office": "UBND Phường Bến Nghé, Quận 1",
    "procedure": "Cấp đổi căn cước công dân",
    "dossierCode": DOSSIER,
    "citizenName": "Trần Thị Bích Ngọc",
    "submittedAt": "2026-03-14T09:15",
    "appointmentDate": "2026-03-21",
    "counter": "Quầy số 3",
    "qr": DOSSIER,
}
SLIP = {"template": "appointment", "fields": FIELDS}


def slip_image(message: Received) -> Image.Image:
    image = Image.open(io.BytesIO(message.payload["png"]))
    assert image.format == "PNG"
    image.load()
    return image


def qr_codes(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image.convert("L"))]


async def test_description_lists_the_contract(ui: UiClient, drivers: dict[str, str]) -> None:
    info = await check_description(
        ui, DEV, "printer", drivers["printer"], {"printSlip", "printRaw", "cut"}, {"paperThreshold"}
    )
    assert "appointment" in info["capabilities"]["templates"]
    assert info["capabilities"]["widthDots"] in (384, 576)
    current = await state(ui, DEV)
    assert current["state"] == "online"
    assert current["detail"] == {"paper": "full", "cover": "closed"}


async def test_print_slip_prints_the_dossier_qr(ui: UiClient) -> None:
    width = (await device_info(ui, DEV))["capabilities"]["widthDots"]
    async with outputs(ui, DEV, "slip") as slips:
        request = await acked(await start(ui, DEV, "printSlip", SLIP))
        result = ok(await request.completion(5))
        printed = await asyncio.wait_for(slips.get(), 2)
    assert result["copies"] == 1
    assert result["template"] == "appointment"
    assert result["widthDots"] == width
    assert result["lengthDots"] > width // 2
    assert printed.payload["widthDots"] == width
    assert printed.payload.get("requestId") in (None, request.request_id)
    image = slip_image(printed)
    assert image.size == (result["widthDots"], result["lengthDots"])
    assert qr_codes(image) == [DOSSIER]


async def test_copies_print_one_slip_each(ui: UiClient) -> None:
    async with outputs(ui, DEV, "slip") as slips:
        result = ok(await ui.device(DEV, "printSlip", {**SLIP, "copies": 2}, timeout=5))
        await asyncio.sleep(0.1)
        printed = drain(slips)
    assert result["copies"] == 2
    assert len(printed) == 2
    assert all(qr_codes(slip_image(p)) == [DOSSIER] for p in printed)


async def test_cut(ui: UiClient) -> None:
    assert ok(await ui.device(DEV, "cut")) in ({}, None)


async def test_invalid_slips_print_nothing(ui: UiClient) -> None:
    missing = {k: v for k, v in FIELDS.items() if k != "dossierCode"}
    async with outputs(ui, DEV, "slip") as slips:
        failed(await ui.device(DEV, "printSlip", {**SLIP, "template": "nope"}), "invalidData")
        failed(await ui.device(DEV, "printSlip", {**SLIP, "fields": missing}), "invalidData")
        failed(await ui.device(DEV, "printSlip", {**SLIP, "copies": 0}), "invalidData")
        failed(await ui.device(DEV, "printSlip", {"template": "appointment"}), "invalidData")
        await asyncio.sleep(0.1)
        assert drain(slips) == []


async def test_print_raw_needs_to_be_enabled(ui: UiClient, technician: UiClient) -> None:
    raw_allowed = (await device_info(ui, DEV))["capabilities"]["raw"]
    assert "technician role" in failed(
        await ui.device(DEV, "printRaw", {"data": b"x"}), "userError"
    )
    reply = await technician.device(DEV, "printRaw", {"data": b"\x1b@hello\n"})
    if raw_allowed:
        assert ok(reply)["bytesSent"] == 8
    else:
        failed(reply, "unsupportedCommand")


async def test_paper_out_is_a_user_error_until_a_new_roll(ui: UiClient) -> None:
    async with events(ui, DEV) as evt, outputs(ui, DEV, "slip") as slips:
        await ui.sim(DEV, "paper", {"level": "low"})
        assert (await evt.next("paperThreshold"))["data"] == {"level": "low"}
        low = await state(ui, DEV, lambda s: s["detail"]["paper"] == "low")
        assert low["state"] == "online", "low paper still prints"
        ok(await ui.device(DEV, "printSlip", SLIP, timeout=5))

        await ui.sim(DEV, "paper", {"level": "out"})
        assert (await evt.next("paperThreshold"))["data"] == {"level": "out"}
        out = await state(ui, DEV, lambda s: s["state"] == "userError")
        assert out["detail"]["paper"] == "out"
        status = await wait_status(ui, lambda s: s["state"] == "degraded")
        assert "printer:userError" in status["reasons"]
        failed(await ui.device(DEV, "printSlip", SLIP, timeout=5), "userError")
        failed(await ui.device(DEV, "cut"), "userError")

        await ui.sim(DEV, "paper", {"level": "full"})
        assert (await evt.next("paperThreshold"))["data"] == {"level": "full"}
        await state(ui, DEV, lambda s: s["state"] == "online" and s["detail"]["paper"] == "full")
        await wait_status(ui, lambda s: s["state"] == "ready")
        ok(await ui.device(DEV, "printSlip", SLIP, timeout=5))
        await asyncio.sleep(0.1)
        assert len(drain(slips)) == 2, "one slip on low paper, none while out, one after"


async def test_cover_open_is_a_user_error(ui: UiClient) -> None:
    async with outputs(ui, DEV, "slip") as slips:
        await ui.sim(DEV, "cover", {"open": True})
        opened = await state(ui, DEV, lambda s: s["state"] == "userError")
        assert opened["detail"]["cover"] == "open"
        failed(await ui.device(DEV, "printSlip", SLIP, timeout=5), "userError")
        await ui.sim(DEV, "cover", {"open": False})
        closed = await state(ui, DEV, lambda s: s["state"] == "online")
        assert closed["detail"]["cover"] == "closed"
        ok(await ui.device(DEV, "printSlip", SLIP, timeout=5))
        await asyncio.sleep(0.1)
        assert len(drain(slips)) == 1


async def test_jam_is_a_hardware_error(ui: UiClient) -> None:
    async with events(ui, DEV) as evt:
        await ui.sim(DEV, "fault", {"kind": "jam"})
        jammed = await state(ui, DEV, lambda s: s["state"] == "hardwareError")
        assert jammed["detail"]["paper"] == "jammed"
        failed(await ui.device(DEV, "printSlip", SLIP, timeout=5), "hardwareError")
        await ui.sim(DEV, "fault", {"kind": "clear"})
        cleared = await state(ui, DEV, lambda s: s["state"] == "online")
        assert cleared["detail"]["paper"] == "full"
        assert "paperThreshold" not in evt.names(), "a jam is not a paper level"


async def test_a_started_print_is_not_interrupted_by_its_deadline(ui: UiClient) -> None:
    await ui.sim(DEV, "fault", {"kind": "slow", "delayMs": 300})
    async with outputs(ui, DEV, "slip") as slips:
        result = ok(await ui.device(DEV, "printSlip", {**SLIP, "timeoutMs": 100}, timeout=5))
        assert result["copies"] == 1
        await asyncio.wait_for(slips.get(), 2)


async def test_paper_out_mid_job_fails_after_the_printed_copies(ui: UiClient) -> None:
    # Each copy waits 300 ms for the printer's status first: time to run out of paper.
    await ui.sim(DEV, "fault", {"kind": "slow", "delayMs": 300})
    async with outputs(ui, DEV, "slip") as slips:
        job = await acked(await start(ui, DEV, "printSlip", {**SLIP, "copies": 2}))
        await asyncio.wait_for(slips.get(), 2)
        await ui.sim(DEV, "paper", {"level": "out"})
        description = failed(await job.completion(3), "userError")
        assert "1 of 2" in description, description
        await asyncio.sleep(0.05)
        assert drain(slips) == []
    await state(ui, DEV, lambda s: s["state"] == "userError")


async def test_a_retried_print_slip_prints_once(ui: UiClient) -> None:
    # The UI lost its replies and retries with the same requestId, while the slip
    # prints (answered with the ack) and after it completed (the same completion).
    await ui.sim(DEV, "fault", {"kind": "slow", "delayMs": 300})  # still printing at the retry
    async with outputs(ui, DEV, "slip") as slips:
        first = await acked(await start(ui, DEV, "printSlip", SLIP, request_id="slip-retry-1"))
        await acked(await start(ui, DEV, "printSlip", SLIP, request_id="slip-retry-1"))
        result = ok(await first.completion(5))
        again = ok(await ui.device(DEV, "printSlip", SLIP, request_id="slip-retry-1", timeout=5))
        assert again == result
        await asyncio.sleep(0.3)
        assert len(drain(slips)) == 1, "three requests with one requestId print one slip"


async def test_a_printer_that_does_not_answer_is_a_hardware_error(ui: UiClient) -> None:
    async with outputs(ui, DEV, "slip") as slips:
        await ui.sim(DEV, "fault", {"kind": "unresponsive"})
        await state(ui, DEV, lambda s: s["state"] == "hardwareError", timeout=5)
        description = failed(await ui.device(DEV, "printSlip", SLIP, timeout=10), "hardwareError")
        assert description
        # The daemon keeps serving: status and the other devices answer.
        status = await wait_status(ui, lambda s: "printer:hardwareError" in s["reasons"])
        assert status["state"] == "degraded"
        ok(await ui.device("lights", "set", {"position": "printer", "mode": "on"}))
        await ui.sim(DEV, "fault", {"kind": "clear"})
        await state(ui, DEV, lambda s: s["state"] == "online", timeout=5)
        ok(await ui.device(DEV, "printSlip", SLIP, timeout=5))
        await asyncio.sleep(0.1)
        assert len(drain(slips)) == 1, "nothing printed while the printer was mute"
