"""PACE with the chip authentication mapping (PACE-CAM), replayed from a German document's session.

gmrtd recorded it and published it with the terminal's private keys
(tests/data/icao/gmrtd/pace_cam_de.json; SOURCES.md): EF.CardAccess offering the
generic and the chip authentication mapping on brainpoolP256r1, the MRZ password,
the PACE exchange (whose last answer carries the encrypted chip authentication
data), then EF.CardSecurity read under the new secure messaging.  The driver must
send the same PACE commands, derive gmrtd's session keys, and find that the chip
holds the static key EF.CardSecurity publishes, in a file its document signer signed.
"""

from __future__ import annotations

import json
from pathlib import Path

from devices.card_reader.icao import pace
from devices.card_reader.icao.reader import ChipSession
from devices.card_reader.identity import BacKey

RECORD = json.loads(
    (Path(__file__).parent.parent / "data" / "icao" / "gmrtd" / "pace_cam_de.json").read_text()
)
H = bytes.fromhex
KEY = BacKey(**RECORD["mrz"])


def run() -> tuple[ChipSession, pace.PaceTerminal, list[str]]:
    infos = pace.parse_card_access(H(RECORD["card_access"]))
    chosen = next(i for i in infos if i.chip_authentication)
    terminal = pace.PaceTerminal(
        chosen,
        pace.password(KEY)[1],
        map_key=int(RECORD["terminal_map_key"], 16),
        ephemeral_key=int(RECORD["terminal_ephemeral_key"], 16),
    )
    sent: list[str] = []

    async def chip(apdu: bytes) -> bytes:
        sent.append(apdu.hex().upper())
        return H(RECORD["exchange"][len(sent) - 1][1])

    return ChipSession(chip), terminal, sent


def test_the_card_access_offers_cam_and_the_reader_prefers_it() -> None:
    infos = pace.parse_card_access(H(RECORD["card_access"]))
    assert [i.describe() for i in infos] == [
        "id-PACE-ECDH-GM-AES-CBC-CMAC-128 (parameter 13)",
        "id-PACE-ECDH-CAM-AES-CBC-CMAC-128 (parameter 13)",
    ]
    assert pace.preferred(infos) == infos[1]


async def test_the_recorded_pace_cam_session_replays_and_the_chip_is_authentic() -> None:
    session, terminal, sent = run()
    infos = pace.parse_card_access(H(RECORD["card_access"]))
    await session.pace(KEY, infos, terminal=terminal)
    pace_commands = [command.upper() for command, _ in RECORD["exchange"][:5]]
    assert sent == pace_commands, "MSE:Set AT and the four GENERAL AUTHENTICATE, byte for byte"
    assert terminal.keys == pace.PaceKeys(H(RECORD["ks_enc"]), H(RECORD["ks_mac"]), 16)
    await session.check_cam()
    assert (session.cam_authentic, session.cam_issue) == (True, None)
    reads = [command[:8] for command, _ in RECORD["exchange"][6:]]
    assert [command[:8] for command in sent[6:]] == [r.upper() for r in reads]
    assert sent[5] == RECORD["exchange"][5][0].upper(), "SELECT EF.CardSecurity, byte for byte"


async def test_a_chip_that_does_not_hold_the_key_fails_cam() -> None:
    """The recorded chip authentication data checked against another static key (constructed)."""
    session, terminal, _ = run()
    infos = pace.parse_card_access(H(RECORD["card_access"]))
    await session.pace(KEY, infos, terminal=terminal)
    last_answer = H(RECORD["exchange"][4][1])[:-2]
    encrypted = pace.dynamic_auth_object(last_answer, pace.GA_CAM_DATA)
    other = terminal.domain.multiply(terminal.domain.generator, 12345)
    assert pace.verify_cam(terminal, encrypted, other) is False
