"""Chip Authentication (DG14) and Active Authentication (DG15), both ends, without the stack.

DG14 parsing is checked on a real passport's DG14 (a 2014 Dutch specimen,
published in playtime222/CaSessionUtilities
``CaSessionUtilitiesTest/ResponseEncoderTests.cs``): explicit brainpoolP320r1
parameters, Chip Authentication with AES-256, PACE and Terminal Authentication
infos to skip, and an ECDSA-SHA256 Active Authentication algorithm.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devices.card_reader.icao import aa, ca
from devices.card_reader.icao.apdu import CommandApdu, ResponseApdu
from devices.errors import ProtocolError
from devices.sim.card_reader.vcard.files import ChipKeys, build_dg14

H = bytes.fromhex

SPECIMEN_DG14 = H(
    "6E8201D9318201D5300D060804007F0007020202020101300F060A04007F000702020302040201013012060A"
    "04007F0007020204020402010202010E30170606678108010105020101060A04007F00070101040103308201"
    "84060904007F000702020102308201753082011D06072A8648CE3D020130820110020101303406072A8648CE"
    "3D0101022900D35E472036BC4FB7E13C785ED201E065F98FCFA6F6F40DEF4F92B9EC7893EC28FCD412B1F1B3"
    "2E27305404283EE30B568FBAB0F883CCEBD46D3F3BB8A2A73513F5EB79DA66190EB085FFA9F492F375A97D86"
    "0EB40428520883949DFDBC42D3AD198640688A6FE13F41349554B49ACC31DCCD884539816F5EB4AC8FB1F1A6"
    "04510443BD7E9AFB53D8B85289BCC48EE5BFE6F20137D10A087EB6E7871E2A10A599C710AF8D0D39E2061114"
    "FDD05545EC1CC8AB4093247F77275E0743FFED117182EAA9C77877AAAC6AC7D35245D1692E8EE1022900D35E"
    "472036BC4FB7E13C785ED201E065F98FCFA5B68F12A32D482EC7EE8658E98691555B44C5931102010103520004"
    "710DA6DAB5B770920D3D4D6807B02A13059BEFB4926E2D00CFDE4B4471571473A582934BBE92059800663578"
    "C83419E3563FE3E8AF3AE58B521D3741693C9CE19B312392CB00F59AF086863186706396"
)


def test_a_real_dg14_with_explicit_curve_parameters() -> None:
    dg14 = ca.parse_dg14(SPECIMEN_DG14)
    assert dg14.infos == [ca.CaInfo(f"{ca.ID_CA_ECDH}.4", 1, None)]
    assert dg14.aa_signature == aa.ECDSA_PLAIN_SHA256
    chosen = dg14.choice()
    assert chosen is not None
    info, key = chosen
    terminal = ca.CaTerminal(info, key)
    assert terminal.domain.name == "BRAINPOOLP320r1"
    public = terminal.public_key()
    assert len(public) == 1 + 2 * 40
    mse, authenticate = ca.commands(info, public)
    assert mse.encode().hex().upper() == "002241A40C800A04007F00070202030204"
    assert authenticate.encode()[:7] == H("00860000557C53")
    assert authenticate.le == 256


@pytest.mark.parametrize("protocol", [f"{ca.ID_CA_ECDH}.2", f"{ca.ID_CA_ECDH}.1"])
def test_both_ends_agree_and_a_clone_does_not(protocol: str) -> None:
    keys = ChipKeys.generate()
    der = keys.ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    chosen = ca.parse_dg14(ca.build_dg14(der, protocol, None)).choice()
    assert chosen is not None
    info, key = chosen
    terminal = ca.CaTerminal(info, key)
    public = terminal.public_key()
    commands = ca.commands(info, public)
    assert len(commands) == (1 if protocol.endswith(".1") else 2)  # Set KAT, or Set AT + GA
    command = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)
    chip = ca.chip_session(keys.ca, info, public)
    session = terminal.session()
    assert chip.unwrap(session.protect(command)) == command
    assert session.unprotect(chip.wrap(ResponseApdu(b"\x60\x14", 0x9000))).data == b"\x60\x14"
    clone = ca.chip_session(ec.generate_private_key(ec.BrainpoolP256R1()), info, public)
    with pytest.raises(ProtocolError):
        clone.unwrap(terminal.session().protect(command))


@pytest.mark.parametrize("rsa_aa", [False, True])
def test_active_authentication_signatures(*, rsa_aa: bool) -> None:
    keys = ChipKeys.generate(rsa_aa=rsa_aa)
    key = aa.parse_dg15(aa.build_dg15(keys.aa.public_key()))
    nonce = aa.challenge()
    signature = aa.sign(keys.aa, nonce, keys.aa_signature)
    assert aa.verify(key, nonce, signature, keys.aa_signature)
    assert not aa.verify(key, aa.challenge(), signature, keys.aa_signature)
    assert not aa.verify(key, nonce, signature[:-1] + bytes([signature[-1] ^ 1]), None)
    other = ChipKeys.generate(rsa_aa=rsa_aa).aa
    assert not aa.verify(key, nonce, aa.sign(other, nonce, keys.aa_signature), keys.aa_signature)
    assert aa.command(nonce).encode() == H("0088000008") + nonce + H("00")


def test_specimen_dg14_names_its_protocol_and_aa_algorithm() -> None:
    keys = ChipKeys.generate()
    dg14 = ca.parse_dg14(build_dg14(keys))
    assert dg14.infos == [ca.CaInfo(f"{ca.ID_CA_ECDH}.2", 1, None)]
    assert dg14.aa_signature == aa.ECDSA_PLAIN_SHA256
    with pytest.raises(ProtocolError):
        ca.parse_dg14(b"\x6f\x02\x31\x00")
    with pytest.raises(ProtocolError):
        aa.parse_dg15(b"\x6f\x03\x30\x01\x00")
