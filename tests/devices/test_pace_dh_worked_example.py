"""PACE with the DH generic mapping, against the ICAO 9303-11 worked example.

ICAO Doc 9303 part 11 "Worked example: PACE - generic mapping, DH based example"
(the RFC 5114 1024-bit group with a 160-bit subgroup, parameter 0,
``id-PACE-DH-GM-AES-CBC-CMAC-128``, the MRZ password of the GM examples), as
`zienit/icao-examples` reproduces it
(``src/test/java/nl/zienit/icao_examples/PACE_DH_GMTest.java``, commit
4a6400c904587fa816490fa10b8b5ef7d35d59dd): every value below is the example's.
"""

from __future__ import annotations

from datetime import date

import pytest

from devices.card_reader.icao import dh, pace
from devices.card_reader.icao.lds import Ef
from devices.card_reader.icao.reader import read_identity
from devices.card_reader.identity import BacKey, PaceKey
from devices.errors import ProtocolError
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import EmrtdChip
from devices.sim.card_reader.vcard.files import card_files


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


INFO = pace.PaceInfo(f"{pace.ID_PACE}.1.2", 2, 0)
MRZ = BacKey(document_number="T22000129", date_of_birth="640812", date_of_expiry="101031")
Z = h("854D8DF5 827FA685 2D1A4FA7 01CDDDCA")
S = h("FA5B7E3E 49753A0D B9178B7B 9BD898C8")
MAP_KEY = int("5265030F751F4AD18B08AC565FC7AC952E41618D", 16)
MAP_PUBLIC = h(
    "23FB3749 EA030D2A 25B278D2 A562047A DE3F01B7 4F17A154 02CB7352 CA7D2B3E"
    "B71C343D B13D1DEB CE9A3666 DBCFC920 B49174A6 02CB4796 5CAA73DC 702489A4"
    "4D41DB91 4DE9613D C5E98C94 160551C0 DF86274B 9359BC04 90D01B03 AD54022D"
    "CB4F57FA D6322497 D7A1E28D 46710F46 1AFE710F BBBC5F8B A166F431 1975EC6C"
)
CHIP_MAP_PUBLIC = h(
    "78879F57 225AA808 0D52ED0F C890A4B2 5336F699 AA89A2D3 A189654A F70729E6"
    "23EA5738 B26381E4 DA19E004 706FACE7 B235C2DB F2F38748 312F3C98 C2DD4882"
    "A41947B3 24AA1259 AC22579D B93F7085 655AF308 89DBB845 D9E6783F E42C9F24"
    "49400306 254C8AE8 EE9DD812 A804C0B6 6E8CAFC1 4F84D825 8950A91B 44126EE6"
)
G_MAPPED = h(
    "7C9CBFE9 8F9FBDDA 8D143506 FA7D9306 F4CB17E3 C71707AF F5E1C1A1 23702496"
    "84D64EE3 7AF44B8D BD9D45BF 6023919C BAA027AB 97ACC771 666C8E98 FF483301"
    "BFA4872D EDE9034E DFACB708 14166B7F 36067682 9B826BEA 57291B5A D69FBC84"
    "EF1E7790 32A30580 3F743417 93E86974 2D401325 B37EE856 5FFCDEE6 18342DC5"
)
EPHEMERAL_KEY = int("89CCD99B0E8D3B1F11E1296DCA68EC53411CF2CA", 16)
EPHEMERAL_PUBLIC = h(
    "907D89 E2D425A1 78AA81AF 4A7774EC 8E388C11 5CAE6703 1E85EECE 520BD911"
    "551B9AE4 D04369F2 9A02626C 86FBC674 7CC7BC35 2645B616 1A2A42D4 4EDA80A0"
    "8FA8D61B 76D3A154 AD8A5A51 786B0BC0 71470578 71A92221 2C5F67F4 31731722"
    "36B7747D 1671E6D6 92A3C7D4 0A0C3C5C E397545D 015C175E B5130551 EDBC2EE5 D4"
)
CHIP_EPHEMERAL = h(
    "075693D9 AE941877 573E634B 6E644F8E 60AF17A0 076B8B12 3D920107 4D36152B"
    "D8B3A213 F53820C4 2ADC79AB 5D0AEEC3 AEFB9139 4DA476BD 97B9B14D 0A65C1FC"
    "71A0E019 CB08AF55 E1F72900 5FBA7E3F A5DC4189 9238A250 767A6D46 DB974064"
    "386CD456 743585F8 E5D90CC8 B4004B1F 6D866C79 CE0584E4 9687FF61 BC29AEA1"
)
KS_ENC = h("2F7F46AD CC9E7E52 1B45D192 FAFA9126")
KS_MAC = h("805A1D27 D45A5116 F73C5446 9462B7D8")
T_IFD = h("B46DD9BD 4D98381F")
T_IC = h("917F37B5 C0E6D8D1")


def test_the_terminal_reproduces_every_value_of_the_example() -> None:
    assert (INFO.supported, INFO.dh, INFO.describe()) == (
        True,
        True,
        "id-PACE-DH-GM-AES-CBC-CMAC-128 (parameter 0)",
    )
    terminal = pace.PaceTerminal(
        INFO, pace.password(MRZ)[1], map_key=MAP_KEY, ephemeral_key=EPHEMERAL_KEY
    )
    assert terminal.decrypt_nonce(Z) == MAP_PUBLIC
    assert terminal.map_nonce(CHIP_MAP_PUBLIC) == EPHEMERAL_PUBLIC
    assert INFO.domain.encode(terminal._generator) == G_MAPPED  # the example's g'
    assert terminal.agree(CHIP_EPHEMERAL) == T_IFD
    assert terminal.check_chip_token(T_IC) == pace.PaceKeys(KS_ENC, KS_MAC, 16)


def test_a_value_outside_the_subgroup_is_refused() -> None:
    terminal = pace.PaceTerminal(INFO, pace.password(MRZ)[1], map_key=MAP_KEY)
    terminal.decrypt_nonce(Z)
    with pytest.raises(ProtocolError, match="not in"):
        terminal.map_nonce((INFO.domain.order + 2).to_bytes(128, "big"))


@pytest.mark.parametrize(
    ("parameter", "bits"), [(0, (1024, 160)), (1, (2048, 224)), (2, (2048, 256))]
)
def test_the_rfc_5114_groups_are_what_they_claim(parameter: int, bits: tuple[int, int]) -> None:
    """Prime p and subgroup order q of RFC 5114 2.1-2.3; g generates the order-q subgroup."""
    group = dh.STANDARD_GROUPS[parameter]
    assert (group.p.bit_length(), group.q.bit_length()) == bits
    assert (group.p - 1) % group.q == 0
    assert pow(group.g, group.q, group.p) == 1
    assert group.g != 1
    for witness in (2, 3, 5, 7, 11, 13):  # Fermat: p and q are (probable) primes
        assert pow(witness, group.p - 1, group.p) == 1
        assert pow(witness, group.q - 1, group.q) == 1


@pytest.mark.parametrize("parameter", [0, 2])
async def test_a_virtual_chip_offering_dh_pace_is_read_with_the_can(parameter: int) -> None:
    card = SPECIMEN_CARDS["default"]
    files = card_files(card)
    files[int(Ef.CARD_ACCESS)] = pace.build_card_access(
        [pace.PaceInfo(f"{pace.ID_PACE}.1.2", 2, parameter)]
    )
    chip = EmrtdChip(files, card.bac_key(), card.can)

    async def transmit(raw: bytes) -> bytes:
        return chip.process(raw)

    assert card.can is not None
    result = await read_identity(
        transmit, PaceKey(card.can), lambda *_: None, today=date(2026, 1, 1), cscas=None
    )
    assert result.mrz.document_number == "099000123"
    assert result.passive_auth.hashes_valid is True
