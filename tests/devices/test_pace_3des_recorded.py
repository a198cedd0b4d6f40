"""PACE with the ECDH generic mapping and 3DES, replayed from a real passport's session.

The session was recorded from a New Zealand passport and published, with the
terminal's private keys, by gmrtd (`gmrtd/gmrtd` commit
7f23b50ad912f10364f66ddc3423683cfc18e134, `pace/pace_test.go`,
``TestDoPace_GM_ECDH_TDES_CBC_NZ``; MIT licence): EF.CardAccess offering
``id-PACE-ECDH-GM-3DES-CBC-CBC`` on brainpoolP256r1 (parameter 13), the MRZ
password, every APDU and answer, and the session keys gmrtd derived.
"""

from __future__ import annotations

from datetime import date

import pytest

from devices.card_reader.icao import pace
from devices.card_reader.icao.apdu import CommandApdu, ResponseApdu
from devices.card_reader.icao.lds import Ef
from devices.card_reader.icao.reader import ChipSession, read_identity
from devices.card_reader.identity import BacKey, PaceKey
from devices.errors import Unsupported
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import EmrtdChip
from devices.sim.card_reader.vcard.files import card_files

H = bytes.fromhex
CARD_ACCESS = H("31143012060a04007f0007020204020102010202010d")
KEY = BacKey(document_number="LM277954", date_of_birth="781214", date_of_expiry="271115")
TERMINAL_MAP_KEY = int("2808272c0ec20e01a3450030ef32855e9feb5cb17719e985389b1cf47609e69f", 16)
TERMINAL_EPHEMERAL_KEY = int("8f89449052df6c7983750c7b042c3cea12b36819174424c7cd28153f7b70b402", 16)
#: gmrtd's MSE:Set AT also names the domain parameters (84 01 0D), optional with one PACEInfo.
RECORDED_MSE = "0022C1A412800A04007F0007020204020183010184010D"
EXCHANGE = [
    ("10860000027c0000", "7c128010b88382812290017af1cc906ff00e7f4d9000"),
    (
        "10860000457c438141047706b2b6246ab4612229b8a11212ddba7fea0568c9c0975dee22c0e3dd3a3f03"
        "21e8afee836e373b570d24000d56fb195104d486e63321ff8c819dd5ee018dcb00",
        "7c43824104780b4edec9b926f9f964fad826d9990a667608d96ba7b397ae8609b6533e0d036d148365dd"
        "f4e5ff6611c2b62aa17fc9899f327bc929db543e7abd0ee724e4be9000",
    ),
    (
        "10860000457c43834104507a0156efae8fb8acc519036c0b2fe0393c878744c7f91878ee4e07a41412ba"
        "5c0753d68a44a91e9f57f3f992ab689e6c2065d3b2a27c3658a4fd632931ee3800",
        "7c438441042dbaf62e6fdfb31eb66f206493b9e7721586f0e5c93754d7bd5a884ca251ee4d720ab539a6"
        "0561bc46812fa289b58ac69f0c6e32adbaf7241049a31211f80f5b9000",
    ),
    ("008600000c7c0a85088d7c617d43efe09e00", "7c0a8608cb57047c809079f69000"),
]
KS_ENC = H("430e4c8c38dfefaed92067b919a897f8")
KS_MAC = H("c1bc1f075797b970b5a45e64a764b0cb")


def test_the_card_access_offers_3des_generic_mapping() -> None:
    (info,) = pace.parse_card_access(CARD_ACCESS)
    assert (info.protocol, info.parameter_id, info.supported, info.key_bytes) == (
        "0.4.0.127.0.7.2.2.4.2.1",
        13,
        True,
        0,
    )
    assert info.describe() == "id-PACE-ECDH-GM-3DES-CBC-CBC (parameter 13)"


async def test_the_recorded_session_replays_byte_for_byte() -> None:
    """Every command the driver sends is the recorded one; the keys are gmrtd's."""
    (info,) = pace.parse_card_access(CARD_ACCESS)
    sent: list[str] = []

    async def chip(apdu: bytes) -> bytes:
        sent.append(apdu.hex().upper())
        if len(sent) == 1:
            return H("9000")
        return H(EXCHANGE[len(sent) - 2][1])

    terminal = pace.PaceTerminal(
        info,
        pace.password(KEY)[1],
        map_key=TERMINAL_MAP_KEY,
        ephemeral_key=TERMINAL_EPHEMERAL_KEY,
    )
    session = ChipSession(chip)
    await session.pace(KEY, [info], terminal=terminal)
    assert sent[0] == RECORDED_MSE.replace("12800A", "0F800A").removesuffix("84010D")
    assert sent[1:] == [command.upper() for command, _ in EXCHANGE]
    assert terminal.keys == pace.PaceKeys(KS_ENC, KS_MAC, 0)


def test_the_session_keys_open_3des_secure_messaging_with_a_zero_counter() -> None:
    channel = pace.PaceKeys(KS_ENC, KS_MAC, 0).channel()
    assert channel.ssc == 0
    command = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)
    protected = channel.protect(command)
    assert protected.encode()[:4] == H("0CB00000")
    assert protected.data[-10:-8] == H("8E08")  # an 8-byte retail MAC, not a 16-byte block


def test_both_ends_agree_on_3des_and_a_wrong_password_fails() -> None:
    (info,) = pace.parse_card_access(CARD_ACCESS)
    secret = pace.password(KEY)[1]
    terminal = pace.PaceTerminal(info, secret)
    chip = pace.PaceChip(info, secret, nonce=H("00112233445566778899AABBCCDDEEFF"))
    chip_map = chip.map_nonce(terminal.decrypt_nonce(chip.encrypted_nonce()))
    chip_ephemeral = chip.agree(terminal.map_nonce(chip_map))
    t_ifd = terminal.agree(chip_ephemeral)
    t_ic = chip.answer_token(t_ifd)
    assert t_ic is not None
    keys = terminal.check_chip_token(t_ic)
    assert keys == chip.keys
    assert keys.key_bytes == 0
    ours, theirs = keys.channel(), keys.channel()
    command = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=2)
    assert theirs.unwrap(ours.protect(command)) == command
    assert ours.unprotect(theirs.wrap(ResponseApdu(b"\x60\x14", 0x9000))).data == b"\x60\x14"
    wrong = pace.PaceChip(info, b"not the password", nonce=H("00112233445566778899AABBCCDDEEFF"))
    terminal2 = pace.PaceTerminal(info, secret)
    wrong_map = wrong.map_nonce(terminal2.decrypt_nonce(wrong.encrypted_nonce()))
    wrong_ephemeral = wrong.agree(terminal2.map_nonce(wrong_map))
    assert wrong.answer_token(terminal2.agree(wrong_ephemeral)) is None


async def test_a_virtual_chip_offering_only_3des_pace_is_read_with_the_can() -> None:
    card = SPECIMEN_CARDS["default"]
    files = card_files(card)
    files[int(Ef.CARD_ACCESS)] = pace.build_card_access(
        [pace.PaceInfo(f"{pace.ID_PACE}.2.1", 2, 13)]
    )
    chip = EmrtdChip(files, card.bac_key(), card.can)

    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    assert card.can is not None
    result = await read_identity(
        transmit, PaceKey(card.can), lambda *_: None, today=date(2026, 1, 1), cscas=None
    )
    assert result.mrz.document_number == "099000123"
    assert (result.passive_auth.hashes_valid, result.passive_auth.signature_valid) == (True, True)


async def test_a_chip_offering_only_the_dh_integrated_mapping_is_unsupported_and_named() -> None:
    card = SPECIMEN_CARDS["default"]
    files = card_files(card)
    files[int(Ef.CARD_ACCESS)] = pace.build_card_access(
        [pace.PaceInfo(f"{pace.ID_PACE}.3.2", 2, 0)]
    )
    chip = EmrtdChip(files, card.bac_key(), card.can)

    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    assert card.can is not None
    with pytest.raises(Unsupported, match=r"id-PACE-DH-IM-AES-CBC-CMAC-128 \(parameter 0\)"):
        await read_identity(
            transmit, PaceKey(card.can), lambda *_: None, today=date(2026, 1, 1), cscas=None
        )
