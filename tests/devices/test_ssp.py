"""SSP codec against the packet examples of ITL's SSP Protocol Manual (GA138_2_2_2129A).

Every ``bytes.fromhex`` below is copied from the manual's "Packet examples" of
the command or event named in the test (host transmit and slave reply), plus
vectors of an independent implementation, kybarg/encrypted-smiley-secure-protocol
(MIT) at 40e820124ffdf8a6fe27178ffafff5ad7182cff8: its CRC16 test (src/utils.test.js)
and an eSSP packet its src/index.js made (see ``KYBARG_POLL``).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.cash_acceptor.ssp import (
    STX,
    Command,
    Deframer,
    Event,
    FrameError,
    Packet,
    PollEvent,
    Response,
    Setup,
    SspError,
    crc16,
    decode_body,
    encode,
    encode_events,
    encode_setup,
    inhibit_mask,
    parse_events,
    parse_setup,
)
from devices.cash_acceptor.ssp_crypto import (
    DEFAULT_FIXED_KEY,
    EsspError,
    EsspSession,
    KeyExchange,
    is_prime,
    key_bytes,
    open_block,
    seal,
)

# (what, host transmit or slave reply) from GA138's packet examples.
MANUAL_PACKETS = [
    ("sync", "7F 80 01 11 65 82"),
    ("reply OK", "7F 80 01 F0 23 80"),
    ("reset", "7F 80 01 01 06 02"),
    ("host protocol version 8", "7F 80 02 06 08 03 94"),
    ("host protocol version 9", "7F 80 02 06 09 06 14"),
    ("reply FAIL", "7F 80 01 F8 10 00"),
    ("poll", "7F 80 01 07 12 02"),
    ("poll: reset, disabled", "7F 80 03 F0 F1 E8 BF 8C"),
    ("poll: credit channel 1, stacked", "7F 80 04 F0 EE 01 EB B9 48"),
    ("get serial number", "7F 80 01 0C 2B 82"),
    ("serial number 01873452", "7F 80 05 F0 00 1C 96 2C D4 97"),
    ("disable", "7F 80 01 09 35 82"),
    ("enable", "7F 80 01 0A 3F 82"),
    ("reply cannot be processed", "7F 80 01 F5 3D 80"),
    ("set inhibits 1-3", "7F 80 03 02 07 00 2B B6"),
    ("set inhibits all 16", "7F 80 03 02 FF FF 25 A4"),
    ("reject", "7F 80 01 08 30 02"),
    ("last reject code", "7F 80 01 17 71 82"),
    ("hold", "7F 80 01 18 53 82"),
    ("setup request", "7F 80 01 05 1D 82"),
    ("poll with ack", "7F 80 01 56 F7 83"),
    ("event ack", "7F 80 01 57 F2 03"),
    ("get counters", "7F 80 01 58 D0 03"),
    ("set generator 982451653", "7F 80 09 4A C5 05 8F 3A 00 00 00 00 B2 73"),
    ("set modulus 1287821", "7F 80 09 4B 8D A6 13 00 00 00 00 00 6C F6"),
    ("request key exchange", "7F 80 09 4C 79 C8 9C E2 DE 06 00 00 9D 52"),
    ("slave intermediate key", "7F 80 09 F0 23 68 1B FA E5 3C 27 DB 80 8A"),
    ("SMART coin setup (address 0x10)", "7F 90 02 05 05 28 5E"),
]


@pytest.mark.parametrize(("what", "hexed"), MANUAL_PACKETS, ids=[w for w, _ in MANUAL_PACKETS])
def test_manual_packets_encode_and_decode_byte_for_byte(what: str, hexed: str) -> None:
    wire = bytes.fromhex(hexed)
    assert STX not in wire[1:], f"{what}: the examples hold no stuffed byte"
    packet = decode_body(wire[1:])
    assert encode(packet) == wire
    assert Deframer().feed(wire) == [packet]


def test_crc_matches_an_independent_implementation() -> None:
    # kybarg/encrypted-smiley-secure-protocol src/utils.test.js: CRC16([1,2,3,4]) == [23, 158].
    assert crc16(bytes([1, 2, 3, 4])).to_bytes(2, "little") == bytes([23, 158])


def test_commands_the_driver_sends_are_the_manuals() -> None:
    assert encode(Packet(0, True, bytes([Command.SYNC]))) == bytes.fromhex("7F 80 01 11 65 82")
    assert encode(Packet(0, True, bytes([Command.POLL]))) == bytes.fromhex("7F8001071202")
    assert encode(
        Packet(0, True, bytes([Command.SET_INHIBITS, *inhibit_mask({1, 2, 3})]))
    ) == bytes.fromhex("7F 80 03 02 07 00 2B B6")
    assert inhibit_mask(set(range(1, 17))) == b"\xff\xff"


def test_poll_events_of_the_manual() -> None:
    def events(hexed: str) -> list[PollEvent]:
        data = decode_body(bytes.fromhex(hexed)[1:]).data
        assert data[0] == Response.OK
        return parse_events(data[1:])

    assert events("7F 80 03 F0 F1 E8 BF 8C") == [
        PollEvent(Event.SLAVE_RESET),
        PollEvent(Event.DISABLED),
    ]
    assert events("7F 80 04 F0 EE 01 EB B9 48") == [
        PollEvent(Event.CREDIT, 1),
        PollEvent(Event.STACKED),
    ]
    assert events("7F 80 03 F0 EF 00 CF CA") == [PollEvent(Event.READ, 0)]
    assert events("7F 80 03 F0 EF 03 C5 CA") == [PollEvent(Event.READ, 3)]
    assert events("7F 80 03 F0 EE 04 D7 CC") == [PollEvent(Event.CREDIT, 4)]
    assert events("7F 80 02 F0 ED 51 A2") == [PollEvent(Event.REJECTING)]
    assert events("7F 80 02 F0 EC 54 22") == [PollEvent(Event.REJECTED)]
    assert events("7F 80 02 F0 CC 97 A2") == [PollEvent(Event.STACKING)]
    assert events("7F 80 02 F0 EB 45 A2") == [PollEvent(Event.STACKED)]
    assert events("7F 80 02 F0 E9 4A 22") == [PollEvent(Event.UNSAFE_JAM)]
    assert events("7F 80 02 F0 E8 4F A2") == [PollEvent(Event.DISABLED)]
    assert events("7F 80 03 F0 E6 02 C0 7C") == [PollEvent(Event.FRAUD_ATTEMPT, 2)]
    assert events("7F 80 02 F0 E7 6D A2") == [PollEvent(Event.STACKER_FULL)]
    assert events("7F 80 03 F0 E1 00 CC 6E") == [PollEvent(Event.NOTE_CLEARED_FROM_FRONT, 0)]
    assert events("7F 80 03 F0 E2 02 C3 E4") == [PollEvent(Event.NOTE_CLEARED_INTO_CASHBOX, 2)]
    assert events("7F 80 02 F0 E0 7C 22") == [PollEvent(Event.NOTE_PATH_OPEN)]
    assert events("7F 80 02 F0 B5 82 23") == [PollEvent(Event.CHANNEL_DISABLE)]
    assert events("7F 80 02 F0 B6 88 23") == [PollEvent(Event.INITIALISING)]
    assert events("7F 80 02 F0 F1 1A 22") == [PollEvent(Event.SLAVE_RESET)]
    # The simulator's encoder gives the manual's bytes back.
    reply = encode_events([PollEvent(Event.CREDIT, 1), PollEvent(Event.STACKED)])
    assert encode(Packet(0, True, reply)) == bytes.fromhex("7F 80 04 F0 EE 01 EB B9 48")


def test_unknown_events_and_truncated_channels_are_refused() -> None:
    with pytest.raises(SspError, match="unknown SSP event 0x42"):
        parse_events(bytes([Event.STACKED, 0x42]))
    with pytest.raises(SspError, match="without its channel"):
        parse_events(bytes([Event.CREDIT]))


def test_setup_reply_of_the_manual() -> None:
    # A BNV with the GBP dataset, firmware 1.00, three channels: 5, 10, 20 (protocol 5).
    reply = "7F 80 17 F0 00 30 31 30 30 47 42 50 00 00 01 03 05 0A 14 02 02 02 40 00 00 05 61 81"
    setup = parse_setup(decode_body(bytes.fromhex(reply)[1:]).data)
    assert setup == Setup(
        unit_type=0,
        firmware="0100",
        currency="GBP",
        protocol_version=5,
        values=(5, 10, 20),
        currencies=("GBP", "GBP", "GBP"),
    )


def test_expanded_setup_round_trips_vnd_notes() -> None:
    vnd = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)
    setup = Setup(0, "0420", "VND", 8, vnd, ("VND",) * len(vnd))
    assert parse_setup(encode_setup(setup)) == setup
    with pytest.raises(SspError):
        parse_setup(bytes([Response.FAIL]))
    with pytest.raises(SspError):
        parse_setup(encode_setup(setup)[:20])


def test_stuffing_doubles_0x7f_everywhere_after_stx() -> None:
    packet = Packet(0x7D, False, bytes([0x7F, 0x01, 0x7F, 0x7F]))
    wire = encode(packet)
    assert wire.count(b"\x7f\x7f") >= 3
    assert Deframer().feed(wire) == [packet]


def test_deframer_resyncs_on_a_lone_stx_and_drops_bad_crcs() -> None:
    good = bytes.fromhex("7F 80 01 F0 23 80")
    broken = bytes.fromhex("7F 80 01 F0 23 81")
    deframer = Deframer()
    # Noise, a packet cut short by a new STX, a bad CRC, then a good one.
    assert deframer.feed(b"\x00\x13" + good[:3] + broken + good) == [decode_body(good[1:])]
    assert deframer.dropped == 1
    with pytest.raises(FrameError):
        decode_body(broken[1:])


@given(
    st.integers(0, 0x7D),
    st.booleans(),
    st.binary(min_size=1, max_size=255),
    st.binary(max_size=40),
)
def test_any_packet_survives_noise_before_it(
    address: int, seq: bool, data: bytes, noise: bytes
) -> None:
    packet = Packet(address, seq, data)
    wire = encode(packet)
    deframer = Deframer()
    # Noise without STX, then the packet: the packet comes out whole, split anywhere.
    got = deframer.feed(noise.replace(b"\x7f", b"")) + deframer.feed(wire[:3])
    got += deframer.feed(wire[3:])
    assert got == [packet]


# -- eSSP --------------------------------------------------------------------------------------

# Made by kybarg/encrypted-smiley-secure-protocol at 40e820124ffdf8a6fe27178ffafff5ad7182cff8
# (src/index.js getPacket, run under Node 20 with its random packing bytes set to zero): POLL,
# encrypted with the fixed key 0123456701234567 and the negotiated key 0x1122334455667788,
# count 5.  The same library's extractPacketData opened REPLY (made here, count 6) to
# F0 EE 01 EB and moved its count to 6.
KYBARG_POLL = "7f80117e6fa63aa45ef129224ae284c87332e2e96fe1"
REPLY_OPENED_BY_KYBARG = "7f80117ee62a2098a8231514e35c5944bb488df07154"
NEGOTIATED = 0x1122334455667788


def test_essp_packet_matches_an_independent_implementation() -> None:
    key = key_bytes(DEFAULT_FIXED_KEY, NEGOTIATED)
    sealed = seal(key, 5, bytes([Command.POLL]), packing=bytes(8))
    assert encode(Packet(0, True, sealed)).hex() == KYBARG_POLL
    slave = EsspSession(key, slave=True)
    slave.count = 5
    assert slave.unwrap(decode_body(bytes.fromhex(KYBARG_POLL)[1:]).data) == bytes([Command.POLL])
    assert slave.count == 6
    reply = seal(key, slave.count, bytes.fromhex("F0 EE 01 EB"), packing=bytes(5))
    assert encode(Packet(0, True, reply)).hex() == REPLY_OPENED_BY_KYBARG


def test_essp_counters_and_keys() -> None:
    # The fixed key goes little-endian, as GA138's "Ssp Set Encryption Key" example sends it.
    assert key_bytes(DEFAULT_FIXED_KEY, 0)[:8] == bytes.fromhex("6745230167452301")
    key = key_bytes(DEFAULT_FIXED_KEY, NEGOTIATED)
    host, slave = EsspSession(key), EsspSession(key, slave=True)
    for n in range(3):
        command = host.wrap(bytes([Command.POLL]))
        assert host.count == n + 1
        assert slave.unwrap(command) == bytes([Command.POLL])
        assert host.unwrap(slave.wrap(bytes([Response.OK]))) == bytes([Response.OK])
    with pytest.raises(EsspError, match="count"):
        slave.unwrap(seal(key, 0, bytes([Command.POLL])))  # a replayed packet
    with pytest.raises(EsspError, match="CRC"):
        open_block(key_bytes(0, NEGOTIATED), host.wrap(b"\x07"))  # another fixed key


def test_key_exchange_agrees_and_uses_primes() -> None:
    # GA138's SET GENERATOR and SET MODULUS examples send primes.
    assert is_prime(982451653)
    assert is_prime(1287821)
    assert not is_prime(1287821 * 3)
    host = KeyExchange()
    assert is_prime(host.generator)
    assert is_prime(host.modulus)
    slave_random = 123456789
    slave_inter = pow(host.generator, slave_random, host.modulus)
    assert host.key(slave_inter) == pow(host.host_inter, slave_random, host.modulus)
