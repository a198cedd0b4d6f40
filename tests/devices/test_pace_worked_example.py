"""ICAO 9303 part 11, PACE worked example (ECDH generic mapping, brainpoolP256r1), byte for byte.

The vectors are ICAO Doc 9303-11's PACE example (MRZ password of the specimen
``T22000129``, EF.CardAccess offering id-PACE-ECDH-GM-AES-CBC-CMAC-128 on
domain parameters 13), copied as an independent implementation tests them:
ZeroPass/dmrtd ``test/pace_test_ecdh.dart`` (Dart, pointycastle).  Both ends
of our code run the whole exchange with the example's fixed private keys and
must produce every published value and APDU.

AES secure messaging has no ICAO worked example; its vectors come from
playtime222/CaSessionUtilities (C#, generated with the Dutch RDW's JMRTD-based
RDE library): ``CaSessionUtilitiesTest/CommandEncoderTests.cs`` (protected
READ BINARY commands, SSC 1) and ``ResponseEncoderTests.cs`` (a protected
response, SSC 2).
"""

from __future__ import annotations

import pytest

from devices.card_reader.icao import pace
from devices.card_reader.icao.apdu import CommandApdu, ResponseApdu
from devices.card_reader.icao.reader import ChipSession
from devices.card_reader.icao.sm import SecureChannel, SecureMessagingError
from devices.card_reader.identity import BacKey, PaceKey
from devices.errors import ProtocolError

H = bytes.fromhex

KEY = BacKey("T22000129", "640812", "101031")
KEY_SEED = H("7e2d2a41c74ea0b38cd36f863939bfa8e9032aad")
K_PI = H("89ded1b26624ec1e634c1989302849dd")
CARD_ACCESS = H("31143012060A04007F0007020204020202010202010D")
NONCE = H("3F00C4D39D153F2B2A214A078D899B22")
NONCE_ENCRYPTED = H("95a3a016522ee98d01e76cb6b98b42c3")
TERMINAL_MAP_KEY = int("7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99", 16)
TERMINAL_MAP_PUBLIC = H(
    "04"
    "7ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E"
    "544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D"
)
CHIP_MAP_KEY = int("498FF49756F2DC1587840041839A85982BE7761D14715FB091EFA7BCE9058560", 16)
CHIP_MAP_PUBLIC = H(
    "04"
    "824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57"
    "30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54"
)
SHARED_H = H(
    "04"
    "60332EF2450B5D247EF6D3868397D398852ED6E8CAF6FFEEF6BF85CA57057FD5"
    "0840CA7415BAF3E43BD414D35AA4608B93A2CAF3A4E3EA4E82C9C13D03EB7181"
)
MAPPED_GENERATOR = H(
    "04"
    "8CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E2"
    "8C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522"
)
TERMINAL_EPHEMERAL_KEY = int("A73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595", 16)
TERMINAL_EPHEMERAL_PUBLIC = H(
    "04"
    "2DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C"
    "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462"
)
CHIP_EPHEMERAL_KEY = int("107CF58696EF6155053340FD633392BA81909DF7B9706F226F32086C7AFF974A", 16)
CHIP_EPHEMERAL_PUBLIC = H(
    "04"
    "9E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB"
    "7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094"
)
SHARED_SECRET = H("28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925")
KS_ENC = H("F5F0E35C0D7161EE6724EE513A0D9A7F")
KS_MAC = H("FE251C7858B356B24514B3BD5F4297D1")
T_IFD = H("C2B0BD78D94BA866")
T_IC = H("3ABB9674BCE93C08")

#: (command the terminal sends, the chip's answer), as printed in the example.
EXCHANGE = [
    ("0022C1A40F800A04007F00070202040202830101", "9000"),
    ("10860000027C0000", "7C12801095A3A016522EE98D01E76CB6B98B42C39000"),
    (
        "10860000457C43814104" + TERMINAL_MAP_PUBLIC[1:].hex() + "00",
        "7C43824104" + CHIP_MAP_PUBLIC[1:].hex() + "9000",
    ),
    (
        "10860000457C43834104" + TERMINAL_EPHEMERAL_PUBLIC[1:].hex() + "00",
        "7C43844104" + CHIP_EPHEMERAL_PUBLIC[1:].hex() + "9000",
    ),
    ("008600000C7C0A8508C2B0BD78D94BA86600", "7C0A86083ABB9674BCE93C089000"),
]


def info() -> pace.PaceInfo:
    (only,) = pace.parse_card_access(CARD_ACCESS)
    return only


def test_card_access_and_password_key() -> None:
    assert info() == pace.PaceInfo("0.4.0.127.0.7.2.2.4.2.2", 2, 13)
    assert info().supported
    assert info().domain.name == "BRAINPOOLP256r1"
    assert pace.build_card_access([info()]) == CARD_ACCESS
    reference, password = pace.password(KEY)
    assert (reference, password) == (pace.PASSWORD_MRZ, KEY_SEED)
    assert pace.password_key(password, 16) == K_PI
    assert pace.password(PaceKey("123456")) == (pace.PASSWORD_CAN, b"123456")


def test_both_ends_reproduce_every_value_of_the_example() -> None:
    _, password = pace.password(KEY)
    terminal = pace.PaceTerminal(
        info(), password, map_key=TERMINAL_MAP_KEY, ephemeral_key=TERMINAL_EPHEMERAL_KEY
    )
    chip = pace.PaceChip(
        info(), password, nonce=NONCE, map_key=CHIP_MAP_KEY, ephemeral_key=CHIP_EPHEMERAL_KEY
    )
    domain = info().domain
    assert chip.encrypted_nonce() == NONCE_ENCRYPTED
    assert terminal.decrypt_nonce(NONCE_ENCRYPTED) == TERMINAL_MAP_PUBLIC
    assert chip.map_nonce(TERMINAL_MAP_PUBLIC) == CHIP_MAP_PUBLIC
    shared = domain.multiply(domain.decode(CHIP_MAP_PUBLIC), TERMINAL_MAP_KEY)
    assert domain.encode(shared) == SHARED_H
    generator = pace.mapped_generator(domain, NONCE, shared)
    assert domain.encode(generator) == MAPPED_GENERATOR
    assert terminal.map_nonce(CHIP_MAP_PUBLIC) == TERMINAL_EPHEMERAL_PUBLIC
    assert chip.agree(TERMINAL_EPHEMERAL_PUBLIC) == CHIP_EPHEMERAL_PUBLIC
    assert terminal.agree(CHIP_EPHEMERAL_PUBLIC) == T_IFD
    assert (
        domain.x_bytes(
            domain.multiply(domain.decode(CHIP_EPHEMERAL_PUBLIC), TERMINAL_EPHEMERAL_KEY)
        )
        == SHARED_SECRET
    )
    assert terminal.keys == chip.keys == pace.PaceKeys(KS_ENC, KS_MAC, 16)
    assert chip.answer_token(T_IFD) == T_IC
    assert terminal.check_chip_token(T_IC) == pace.PaceKeys(KS_ENC, KS_MAC, 16)


def test_a_wrong_password_fails_only_at_the_token_check() -> None:
    _, password = pace.password(KEY)
    terminal = pace.PaceTerminal(info(), b"000000")
    chip = pace.PaceChip(info(), password, nonce=NONCE)
    map_public = terminal.decrypt_nonce(chip.encrypted_nonce())
    ephemeral = terminal.map_nonce(chip.map_nonce(map_public))
    t_ifd = terminal.agree(chip.agree(ephemeral))
    assert chip.answer_token(t_ifd) is None
    with pytest.raises(ProtocolError, match="token"):
        terminal.check_chip_token(T_IC)


async def test_the_driver_session_sends_the_example_apdus_byte_for_byte() -> None:
    """The driver's chip session sends exactly the example's commands and accepts its answers."""
    sent: list[str] = []

    async def chip(apdu: bytes) -> bytes:
        sent.append(apdu.hex().upper())
        return H(EXCHANGE[len(sent) - 1][1])

    session = ChipSession(chip)
    terminal = pace.PaceTerminal(
        info(),
        pace.password(KEY)[1],
        map_key=TERMINAL_MAP_KEY,
        ephemeral_key=TERMINAL_EPHEMERAL_KEY,
    )
    await session.pace(KEY, [info()], terminal=terminal)
    assert sent == [command.upper() for command, _ in EXCHANGE]


def test_aes_secure_messaging_commands_match_an_independent_implementation() -> None:
    ks_enc = H("7319D1537EF2FE5CB46AFCFF2DF33B521F3A0C4FA92212D98EB49D9CD6BB8916")
    ks_mac = H("ADCBA368FD14A836908252EF76D09BAD2766C5FFB2FE7857F468676FC4B293E0")
    # CommandEncoderTests.cs: READ BINARY by SFI 0E, first command after key agreement.
    for le, wrapped in [
        (1, "0cb08e000d9701018e08fb1cc883d1a9b32d00"),
        (255, "0cb08e000d9701ff8e085d83100cf76663d300"),
        (256, "0cb08e000d9701008e08b16e78e0d1d0023f00"),
        (300, "0cb08e0000000e9702012c8e08bd308fb58e028d140000"),
    ]:
        terminal = SecureChannel.for_aes(ks_enc, ks_mac)
        command = CommandApdu(0x00, 0xB0, 0x8E, 0x00, le=le)
        assert terminal.protect(command).encode() == H(wrapped)
        chip = SecureChannel.for_aes(ks_enc, ks_mac)
        assert chip.unwrap(CommandApdu.parse(H(wrapped))) == command
    # ResponseEncoderTests.cs: the chip's answer (first byte of DG14) to that command.
    response = H("8711016D9F6F6FDA79FF285C2C1D3AEA1FFD03990290008E089C3B7B89BB7849929000")
    chip = SecureChannel.for_aes(ks_enc, ks_mac)
    chip.unwrap(CommandApdu.parse(H("0cb08e000d9701018e08fb1cc883d1a9b32d00")))
    assert chip.wrap(ResponseApdu(H("6E"), 0x9000)).encode() == response
    terminal = SecureChannel.for_aes(ks_enc, ks_mac)
    terminal.protect(CommandApdu(0x00, 0xB0, 0x8E, 0x00, le=1))
    assert terminal.unprotect(ResponseApdu.parse(response)) == ResponseApdu(H("6E"), 0x9000)
    assert terminal.ssc == 2
    tampered = bytearray(response)
    tampered[5] ^= 1
    with pytest.raises(SecureMessagingError):
        SecureChannel.for_aes(ks_enc, ks_mac).unprotect(ResponseApdu.parse(bytes(tampered)))


def test_aes_secure_messaging_round_trips_data_both_ways() -> None:
    terminal = SecureChannel.for_aes(KS_ENC, KS_MAC)
    chip = SecureChannel.for_aes(KS_ENC, KS_MAC)
    for data in (b"\x01\x1e", bytes(range(16)), bytes(range(200))):
        command = CommandApdu(0x00, 0xA4, 0x02, 0x0C, data, le=256)
        assert chip.unwrap(terminal.protect(command)) == command
        answer = ResponseApdu(data[::-1], 0x9000)
        assert terminal.unprotect(chip.wrap(answer)) == answer
