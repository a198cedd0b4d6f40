"""printer: ``printSlip`` of the appointment template prints one slip."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from hil.rig import SIM, Hands, Rig
from hil.wire import expect, ok, sim_out_topic
from tests.uiclient import UiClient

#: Every field of devices/printer/templates/appointment.toml (the printSlip API).
APPOINTMENT = {
    "office": "UBND Phường Bến Nghé, Quận 1",
    "procedure": "Cấp đổi căn cước công dân",
    "dossierCode": "HIL-2025-000123",
    "citizenName": "Nguyễn Văn Thử",
    "submittedAt": "2025-01-15T09:30",
    "appointmentDate": "2025-01-22",
    "counter": "Quầy số 3",
    "qr": "https://dichvucong.example.vn/tra-cuu/HIL-2025-000123",
}


def _qr_texts(png: bytes) -> list[str] | None:
    """Decode the QR codes on a slip image; None when zxing-cpp is not installed."""
    try:
        import zxingcpp  # noqa: PLC0415 - optional: a test extra
    except ImportError:
        return None
    with Image.open(io.BytesIO(png)) as image:
        return [r.text for r in zxingcpp.read_barcodes(image.convert("L"))]


async def test_print_appointment_slip(
    rig: Rig, ui: UiClient, hands: Hands, described: dict[str, dict[str, Any]]
) -> None:
    printer = rig.device("printer")
    capabilities = described[printer.id]["capabilities"]
    if "appointment" not in capabilities.get("templates", []):
        pytest.skip(f"{printer.id} has no appointment template")
    async with ui.subscription(sim_out_topic(ui, printer.id, "slip")) as slips:
        printing = await ui.start(
            f"{ui.root}/dev/{printer.id}/cmd/printSlip",
            {"template": "appointment", "fields": APPOINTMENT, "copies": 1},
        )
        replies = await printing.all_until_completion(35)
        result = ok(replies[-1])
        assert replies[0]["type"] == "ack", replies
        assert result["template"] == "appointment"
        assert result["copies"] == 1
        assert result["widthDots"] == capabilities["widthDots"]
        assert result["lengthDots"] > result["widthDots"], "a slip is longer than it is wide"
        if hands.of(printer.id) == SIM:
            slip = await expect(
                slips,
                # A wire simulator (ESC/POS bytes) cannot know the request: no requestId then.
                lambda m: m.payload.get("requestId") in (None, printing.request_id),
                5,
                f"sim/{printer.id}/out/slip of the request",
            )
            png = slip.payload["png"]
            assert png.startswith(b"\x89PNG"), png[:8]
            assert slip.payload["widthDots"] == result["widthDots"]
            texts = _qr_texts(png)
            if texts is not None:
                assert APPOINTMENT["qr"] in texts, "the slip's QR code holds the qr field"
        else:
            hands.say(
                f">>> CHECK ({printer.id}): one appointment slip for {APPOINTMENT['citizenName']}, "
                f"dossier {APPOINTMENT['dossierCode']}, with a QR code, was printed and cut",
            )
