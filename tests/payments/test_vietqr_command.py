"""``vietqrPayload`` over a real mosquitto: the code a UI gets, and what the daemon refuses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from daemon.config import ConfigError, parse
from daemon.payments.vietqr import Service, Transfer
from daemon.payments.vietqr import parse as parse_payload
from tests.conftest import Broker, RunningDaemon, make_config, run_daemon
from tests.uiclient import UiClient, connect


def _draw(rows: list[str], scale: int = 5, quiet: int = 4) -> Image.Image:
    side = (len(rows) + 2 * quiet) * scale
    image = Image.new("L", (side, side), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark == "1":
                left, top = (x + quiet) * scale, (y + quiet) * scale
                image.paste(0, (left, top, left + scale, top + scale))
    return image


async def test_listed_and_answers_a_code_for_the_configured_account(
    ui: UiClient, daemon: RunningDaemon
) -> None:
    description = (await ui.daemon("getCapabilities"))["result"]
    assert "vietqrPayload" in description["daemonCommands"]
    reply = await ui.daemon("vietqrPayload", {"amount": 35_000, "reference": "VQ4K7P2M9T"})
    assert reply["completionCode"] == "success", reply
    result = reply["result"]
    vietqr = daemon.app.config.vietqr
    assert vietqr is not None
    assert parse_payload(result["payload"]) == Transfer(
        bin=vietqr.bin,
        account=vietqr.account,
        service=Service.ACCOUNT,
        amount=35_000,
        bill_number="VQ4K7P2M9T",
        purpose="VQ4K7P2M9T",
    )
    assert (result["amount"], result["reference"]) == (35_000, "VQ4K7P2M9T")
    assert (result["bin"], result["account"]) == (vietqr.bin, vietqr.account)
    assert result["accountName"] == vietqr.account_name
    codes = zxingcpp.read_barcodes(_draw(result["qr"]))
    assert [c.text for c in codes] == [result["payload"]]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"amount": 0, "reference": "VQ1"}, "amount"),
        ({"amount": 12.5, "reference": "VQ1"}, "amount"),
        ({"reference": "VQ1"}, "amount"),
        ({"amount": 1000, "reference": "HS-2026-01"}, "reference"),
        ({"amount": 1000, "reference": "X" * 26}, "reference"),
        ({"amount": 1000}, "reference"),
    ],
)
async def test_invalid_request_completes_invalid_data(
    ui: UiClient, params: dict[str, object], names: str
) -> None:
    reply = await ui.daemon("vietqrPayload", params)
    assert reply["completionCode"] == "invalidData", reply
    assert names in reply["errorDescription"]


async def test_without_vietqr_config_the_command_is_absent(broker: Broker, tmp_path: Path) -> None:
    config = make_config(broker.port, tmp_path).replace(vietqr=None)
    async with run_daemon(config) as daemon, connect(broker.port, daemon.board) as ui:
        description = (await ui.daemon("getCapabilities"))["result"]
        assert "vietqrPayload" not in description["daemonCommands"]
        reply = await ui.daemon("vietqrPayload", {"amount": 1000, "reference": "VQ1"})
        assert reply["completionCode"] == "unsupportedCommand"
        assert "unknown daemon command 'vietqrPayload'" in reply["errorDescription"]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('bin = "97041"\naccount = "123"', "vietqr.bin"),
        ('bin = "970415"\naccount = "0011-22"', "vietqr.account"),
        ('bin = "970415"\naccount = "12345678901234567890"', "vietqr.account"),
        ('bin = "970415"\naccount = "AB12"\nservice = "card"', "vietqr.account"),
        ('bin = "970415"\naccount = "12"\nservice = "wallet"', "vietqr.service"),
    ],
)
def test_bad_vietqr_config_names_the_key(table: str, key: str) -> None:
    data = tomllib.loads(f'[board]\nid = "b1"\n[vietqr]\n{table}\n')
    with pytest.raises(ConfigError, match=f"kiosk.toml: key `{key}`"):
        parse(data, "kiosk.toml")
