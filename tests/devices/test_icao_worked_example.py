"""ICAO 9303 part 11, appendix D (BAC and 3DES secure messaging), checked byte for byte.

The vectors are the specimen passport's worked example as published in ICAO Doc
9303-11 appendix D.2-D.4, copied as independent implementations test them:
ZeroPass/dmrtd ``test/bac_test.dart`` and ``test/sm_test.dart`` (Dart), with the
same values in pypassport and JMRTD.  Both ends of our code are checked: the
terminal (driver) side and the chip (virtual card) side.
"""

from __future__ import annotations

import pytest

from devices.card_reader.icao import bac
from devices.card_reader.icao.apdu import CommandApdu, ResponseApdu
from devices.card_reader.icao.cipher import KDF_ENC, KDF_MAC, derive_key, retail_mac
from devices.card_reader.icao.sm import SecureChannel, SecureMessagingError
from devices.card_reader.identity import BacKey, check_digit

H = bytes.fromhex

MRZ_LINE_2 = "L898902C<3UTO6908061F9406236ZE184226B<<<<<14"
K_SEED = H("239AB9CB282DAF66231DC5A4DF6BFBAE")
K_ENC = H("AB94FDECF2674FDFB9B391F85D7F76F2")
K_MAC = H("7962D9ECE03D1ACD4C76089DCE131543")
RND_IC = H("4608F91988702212")
RND_IFD = H("781723860C06C226")
K_IFD = H("0B795240CB7049B01C19B33E32804F0B")
K_IC = H("0B4F80323EB3191CB04970CB4052790B")
CMD_DATA = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A7")
RESP_DATA = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")
KS_ENC = H("979EC13B1CBFE9DCD01AB0FED307EAE5")
KS_MAC = H("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = 0x887022120C06C226

#: (unprotected command, protected command, protected response, plain response), D.4.
EXCHANGES = [
    (
        "00A4020C02011E",
        "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800",
        "990290008E08FA855A5D4C50A8ED9000",
        "9000",
    ),
    (
        "00B0000004",
        "0CB000000D9701048E08ED6705417E96BA5500",
        "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000",
        "60145F019000",
    ),
    (
        "00B0000412",
        "0CB000040D9701128E082EA28A70F3C7B53500",
        "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000",
        "04303130365F36063034303030305C0261759000",
    ),
]


def test_mrz_information_and_key_seed() -> None:
    number, birth, expiry = MRZ_LINE_2[0:9], MRZ_LINE_2[13:19], MRZ_LINE_2[21:27]
    assert check_digit(number) == MRZ_LINE_2[9]
    key = BacKey(number.rstrip("<"), birth, expiry)
    assert key.mrz_information == "L898902C<369080619406236"
    assert bac.key_seed(key.mrz_information) == K_SEED
    keys = bac.AccessKeys.from_mrz_information(key.mrz_information)
    assert (keys.k_enc, keys.k_mac) == (K_ENC, K_MAC)
    assert derive_key(K_SEED, KDF_ENC) == K_ENC
    assert derive_key(K_SEED, KDF_MAC) == K_MAC


def test_mutual_authentication_terminal_side() -> None:
    keys = bac.AccessKeys(K_ENC, K_MAC)
    assert bac.terminal_cryptogram(keys, RND_IC, RND_IFD, K_IFD) == CMD_DATA
    assert retail_mac(K_MAC, CMD_DATA[:32]) == H("5F1448EEA8AD90A7")
    session = bac.terminal_session(keys, RND_IC, RND_IFD, K_IFD, RESP_DATA)
    assert (session.ks_enc, session.ks_mac, session.ssc) == (KS_ENC, KS_MAC, SSC)


def test_mutual_authentication_chip_side() -> None:
    keys = bac.AccessKeys(K_ENC, K_MAC)
    answered = bac.chip_answer(keys, RND_IC, K_IC, CMD_DATA)
    assert answered is not None
    answer, session = answered
    assert answer == RESP_DATA
    assert (session.ks_enc, session.ks_mac, session.ssc) == (KS_ENC, KS_MAC, SSC)


def test_wrong_mrz_is_refused_by_the_chip() -> None:
    wrong = bac.AccessKeys.from_mrz_information("L898902C<369080719406236")
    cryptogram = bac.terminal_cryptogram(wrong, RND_IC, RND_IFD, K_IFD)
    assert bac.chip_answer(bac.AccessKeys(K_ENC, K_MAC), RND_IC, K_IC, cryptogram) is None


def test_a_forged_chip_answer_is_a_protocol_error() -> None:
    keys = bac.AccessKeys(K_ENC, K_MAC)
    forged = RESP_DATA[:-1] + bytes([RESP_DATA[-1] ^ 1])
    with pytest.raises(bac.ProtocolError):
        bac.terminal_session(keys, RND_IC, RND_IFD, K_IFD, forged)


def test_secure_messaging_terminal_side_byte_for_byte() -> None:
    channel = SecureChannel(bac.SessionKeys(KS_ENC, KS_MAC, SSC))
    for plain, protected, response, unprotected in EXCHANGES:
        assert channel.protect(CommandApdu.parse(H(plain))).encode() == H(protected)
        answer = channel.unprotect(ResponseApdu.parse(H(response)))
        assert answer.encode() == H(unprotected)
    assert channel.ssc == 0x887022120C06C22C


def test_secure_messaging_chip_side_byte_for_byte() -> None:
    chip = SecureChannel(bac.SessionKeys(KS_ENC, KS_MAC, SSC))
    for plain, protected, response, unprotected in EXCHANGES:
        assert chip.unwrap(CommandApdu.parse(H(protected))) == CommandApdu.parse(H(plain))
        assert chip.wrap(ResponseApdu.parse(H(unprotected))).encode() == H(response)


def test_a_tampered_response_fails_its_mac() -> None:
    channel = SecureChannel(bac.SessionKeys(KS_ENC, KS_MAC, SSC))
    channel.protect(CommandApdu.parse(H(EXCHANGES[1][0])))
    tampered = bytearray(H(EXCHANGES[1][2]))
    tampered[4] ^= 0x01
    with pytest.raises(SecureMessagingError):
        channel.unprotect(ResponseApdu.parse(bytes(tampered)))


def test_an_unprotected_success_is_refused() -> None:
    channel = SecureChannel(bac.SessionKeys(KS_ENC, KS_MAC, SSC))
    with pytest.raises(SecureMessagingError):
        channel.unprotect(ResponseApdu(b"", 0x9000))
    assert channel.unprotect(ResponseApdu(b"", 0x6A82)).sw == 0x6A82


@pytest.mark.parametrize(
    "raw",
    ["00A4040C07A0000002471001", "0084000008", "00B0000004", "00B0000000012C", "00820000020102"],
)
def test_apdu_round_trip(raw: str) -> None:
    assert CommandApdu.parse(H(raw)).encode() == H(raw)


def test_extended_length_is_used_for_long_answers() -> None:
    channel = SecureChannel(bac.SessionKeys(KS_ENC, KS_MAC, SSC))
    protected = channel.protect(CommandApdu(0, 0xB0, 0, 0, le=1000)).encode()
    assert protected[4] == 0, "extended Lc starts with a zero byte"
    assert protected.endswith(b"\x00\x00")
    chip = SecureChannel(bac.SessionKeys(KS_ENC, KS_MAC, SSC))
    assert chip.unwrap(CommandApdu.parse(protected)).le == 1000
