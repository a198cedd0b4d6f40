"""Chip and Active Authentication replayed from real documents' recorded sessions.

gmrtd recorded them (an Austrian and a German passport's Chip Authentication, a
passport's RSA Active Authentication under 3DES secure messaging) and published
them with the secure messaging state before each step and the terminal's random
values (tests/data/icao/gmrtd/recorded_ca_aa.json; SOURCES.md).  The driver must
send the same commands, byte for byte, and accept the chips' answers: for Chip
Authentication, the chip's last answer is MACed under the keys agreed with it, so
verifying it proves this code derived the same keys as the real chip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.card_reader.icao import aa, ca
from devices.card_reader.icao.bac import SessionKeys
from devices.card_reader.icao.reader import ChipSession
from devices.card_reader.icao.sm import SecureChannel

RECORD = json.loads(
    (Path(__file__).parent.parent / "data" / "icao" / "gmrtd" / "recorded_ca_aa.json").read_text()
)
H = bytes.fromhex


@pytest.mark.parametrize("name", ["ca_at", "ca_de"])
async def test_recorded_chip_authentication_replays(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = RECORD[name]
    dg14 = ca.parse_dg14(H(record["dg14"]))
    chosen = dg14.choice()
    assert chosen is not None
    info, _key = chosen
    assert info.protocol == f"{ca.ID_CA_ECDH}.2"  # id-CA-ECDH-AES-CBC-CMAC-128
    real_terminal = ca.CaTerminal

    def fixed(info: ca.CaInfo, key: bytes) -> ca.CaTerminal:
        terminal = real_terminal(info, key, ephemeral_key=int(record["terminal_private"], 16))
        assert terminal.domain.name == "BRAINPOOLP256r1"  # explicit parameters, matched
        return terminal

    monkeypatch.setattr(ca, "CaTerminal", fixed)
    sent: list[str] = []

    async def chip(apdu: bytes) -> bytes:
        sent.append(apdu.hex().upper())
        return H(record["exchange"][len(sent) - 1][1])

    channel = SecureChannel.for_aes(
        H(record["ks_enc"]), H(record["ks_mac"]), ssc=int(record["ssc"], 16)
    )
    session = ChipSession(chip, channel=channel)
    assert await session.chip_authentication(dg14) is True
    recorded = [command.upper() for command, _ in record["exchange"]]
    assert sent[:2] == recorded[:2], "MSE:Set AT and GENERAL AUTHENTICATE, byte for byte"
    # gmrtd confirms with a SELECT of DG14, this driver of EF.COM: another command under the
    # new keys; the chip's recorded answer must verify under the keys this code derived.
    assert sent[2][:8] == recorded[2][:8]
    assert len(sent) == 3


async def test_recorded_active_authentication_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    record = RECORD["aa"]
    monkeypatch.setattr(aa, "challenge", lambda: H(record["challenge"]))
    sent: list[str] = []

    async def chip(apdu: bytes) -> bytes:
        sent.append(apdu.hex())
        return H(record["exchange"][0][1])

    channel = SecureChannel(
        SessionKeys(H(record["ks_enc"]), H(record["ks_mac"]), int(record["ssc"], 16))
    )
    session = ChipSession(chip, channel=channel)
    assert await session.active_authentication(H(record["dg15"]), None) is True
    assert sent == [record["exchange"][0][0]], "INTERNAL AUTHENTICATE, byte for byte"
    key = aa.parse_dg15(H(record["dg15"]))
    signature = H(record["signature"])
    assert aa.verify(key, H(record["challenge"]), signature, None) is True
    assert aa.verify(key, bytes(8), signature, None) is False
