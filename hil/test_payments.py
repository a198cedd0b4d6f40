"""VietQR codes from the board: the payload and its QR rows, checked without the daemon's code."""

from __future__ import annotations

import binascii
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from hil.wire import ok
from tests.uiclient import UiClient


def _draw(rows: list[str], scale: int = 4, quiet: int = 4) -> Image.Image:
    side = (len(rows) + 2 * quiet) * scale
    image = Image.new("L", (side, side), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark == "1":
                left, top = (x + quiet) * scale, (y + quiet) * scale
                image.paste(0, (left, top, left + scale, top + scale))
    return image


async def test_vietqr_payload_is_a_valid_code_for_the_amount_and_reference(
    ui: UiClient, description: dict[str, Any]
) -> None:
    if "vietqrPayload" not in description["daemonCommands"]:
        pytest.skip("the board has no [vietqr] table: no VietQR codes")
    result = ok(await ui.daemon("vietqrPayload", {"amount": 12_000, "reference": "HIL0001"}))
    payload: str = result["payload"]
    # CRC-16/CCITT-FALSE by the standard library's CRC-CCITT (poly 0x1021) from 0xFFFF.
    crc = binascii.crc_hqx(payload[:-4].encode(), 0xFFFF)
    assert payload[-8:] == f"6304{crc:04X}", payload
    assert payload.startswith("000201010212"), "dynamic VietQR (point of initiation 12)"
    assert "0010A000000727" in payload, "NAPAS GUID in ID 38"
    assert f"0006{result['bin']}01{len(result['account']):02d}{result['account']}" in payload
    assert "5303704" in payload
    assert "540512000" in payload
    assert "5802VN" in payload
    assert "0107HIL00010807HIL0001" in payload, "reference as bill number and purpose"
    codes = zxingcpp.read_barcodes(_draw(result["qr"]))
    assert [c.text for c in codes] == [payload]


async def test_vietqr_payload_refuses_an_amount_that_is_not_whole_vnd(
    ui: UiClient, description: dict[str, Any]
) -> None:
    if "vietqrPayload" not in description["daemonCommands"]:
        pytest.skip("the board has no [vietqr] table: no VietQR codes")
    done = await ui.daemon("vietqrPayload", {"amount": 0, "reference": "HIL0001"})
    assert done["completionCode"] == "invalidData", done
    assert "amount" in done["errorDescription"]
