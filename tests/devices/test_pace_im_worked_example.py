"""PACE with the ECDH integrated mapping, against the ICAO 9303-11 worked example.

ICAO Doc 9303 part 11 "Worked example: PACE - integrated mapping, ECDH based
example" (brainpoolP256r1, ``id-PACE-ECDH-IM-AES-CBC-CMAC-128``, CAN 123456),
as `zienit/icao-examples` reproduces it
(``src/test/java/nl/zienit/icao_examples/PACE_ECDH_IMTest.java``, commit
00cd853c9df31ebe7fe6d1f21176dfe3af4988ea): every value below is the example's.
"""

from __future__ import annotations

from datetime import date

from devices.card_reader.icao import pace
from devices.card_reader.icao.lds import Ef
from devices.card_reader.icao.reader import read_identity
from devices.card_reader.identity import PaceKey
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import EmrtdChip
from devices.sim.card_reader.vcard.files import card_files


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


INFO = pace.PaceInfo(f"{pace.ID_PACE}.4.2", 2, 13)
CAN = PaceKey("123456")
K_PI = h("591468CD A83D6521 9CCCB856 0233600F")
Z = h("143DC40C 08C8E891 FBED7DED B92B64AD")
S = h("2923BE84 E16CD6AE 529049F1 F1BBE9EB")
T = h("5DD4CBFC 96F5453B 130D890A 1CDBAE32")
G_MAPPED = h(
    "04 8E82D315 59ED0FDE 92A4D049 8ADD3C23 BABA94FB 77691E31 E90AEA77 FB17D427"
    " 4C1AE14B D0C3DBAC 0C871B7F 36081693 64437CA3 0AC243A0 89D3F266 C1E60FAD"
)
TERMINAL_KEY = int("A73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595", 16)
TERMINAL_PUBLIC = h(
    "04 89CBA23F FE96AA18 D824627C 3E934E54 A9FD0B87 A95D1471 DC1C0ABF DCD640D4"
    " 6755DE9B 7B778280 B6BEBD57 439ADFEB 0E21FD4E D6DF4257 8C13418A 59B34C37"
)
CHIP_PUBLIC = h(
    "04 67F78E5F 7F768608 2B293E8D 087E0569 16D0F74B C01A5F89 57D0DE45 691E51E8"
    " 932B69A9 62B52A09 85AD2C0A 271EE6A1 3A8ADDDC D1A3A994 B9DED257 F4D22753"
)
KS_ENC = h("0D3FEB33 251A6370 893D62AE 8DAAF51B")
KS_MAC = h("B01E89E3 D9E8719E 586B50B4 A7506E0B")
T_IFD = h("450F02B8 6F6A0909")
T_IC = h("75D4D96E 8D5B0308")


def test_the_password_key_and_the_nonce() -> None:
    assert pace.password_key(pace.password(CAN)[1], 16) == K_PI
    assert INFO.supported
    assert INFO.integrated


def test_the_mapped_generator_of_the_example() -> None:
    assert INFO.domain.encode(pace.integrated_generator(INFO.domain, S, T)) == G_MAPPED


def test_the_terminal_reproduces_every_value_of_the_example() -> None:
    terminal = pace.PaceTerminal(INFO, pace.password(CAN)[1], ephemeral_key=TERMINAL_KEY, nonce_t=T)
    assert terminal.decrypt_nonce(Z) == T  # the terminal's nonce goes to the chip
    assert terminal.map_nonce(b"") == TERMINAL_PUBLIC
    assert terminal.agree(CHIP_PUBLIC) == T_IFD
    assert terminal.check_chip_token(T_IC) == pace.PaceKeys(KS_ENC, KS_MAC, 16)


async def test_a_virtual_chip_offering_the_integrated_mapping_is_read_with_the_can() -> None:
    card = SPECIMEN_CARDS["default"]
    files = card_files(card)
    files[int(Ef.CARD_ACCESS)] = pace.build_card_access([INFO])
    chip = EmrtdChip(files, card.bac_key(), card.can)

    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    assert card.can is not None
    result = await read_identity(
        transmit, PaceKey(card.can), lambda *_: None, today=date(2026, 1, 1), cscas=None
    )
    assert result.mrz.document_number == "099000123"
    assert result.passive_auth.hashes_valid is True
