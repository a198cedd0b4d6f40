"""The ``pcsc`` card reader driver through the real stack: pcscd, vpcd and the virtual card.

The driver's ICAO code is first checked against the ICAO 9303-11 appendix D
exchange (a scripted chip answering the published bytes); then the driver reads
the project's virtual card through pcscd: a correct read (PACE with the MRZ
data, PACE with the CAN on brainpoolP256r1 and NIST P-256, BAC on a chip
without PACE), a wrong MRZ, a wrong CAN, a tampered data group, a wrong CSCA,
the card taken away mid-read, garbage from the chip, the reader gone (pcscd
stopped) and back; and another test session leaving the shared pcscd while this
one uses it does not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from devices.base import DeviceState, Message, NoParams
from devices.card_reader.icao.reader import ChipSession, Nonces
from devices.card_reader.identity import BacKey, IdentityResult
from devices.card_reader.pcsc import PcscCardReader, PcscSettings
from devices.card_reader.protocol import AccessKey, ChipIoParams, ReadIdentityParams
from devices.errors import AccessDenied, HardwareError, MediaError, Unsupported
from devices.sim.card_reader.actions import PresentCardParams
from devices.sim.card_reader.pcsc import VirtualCardSimulator, vpcd_reader
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import EmrtdChip
from devices.sim.card_reader.vcard.files import NIST_P256, ChipKeys, card_files, make_pki
from devices.sim.card_reader.vcard.vpcd import VpcdCard
from devices.sim.support.faults import FaultKind, FaultParams
from tests.devices.test_icao_worked_example import (
    CMD_DATA,
    EXCHANGES,
    K_IFD,
    RESP_DATA,
    RND_IC,
    RND_IFD,
)
from tests.pcsc_stack import PCSCD_PID, Pcscd, all_vpcd_slots, pcscd_running
from tests.support import RecordingHost, ctx, make_env, running

H = bytes.fromhex
CARD = SPECIMEN_CARDS["default"]
KEY = AccessKey(
    document_number="079099000123", date_of_birth="1990-01-15", date_of_expiry="2030-01-15"
)


async def test_bac_and_reads_follow_the_worked_example_byte_for_byte() -> None:
    """The driver's chip session sends exactly the appendix D commands and accepts its answers."""
    script = [
        ("0084000008", RND_IC.hex() + "9000"),
        ("0082000028" + CMD_DATA.hex() + "28", RESP_DATA.hex() + "9000"),
        *[(protected, response) for _plain, protected, response, _ in EXCHANGES],
    ]
    sent: list[str] = []

    async def chip(apdu: bytes) -> bytes:
        sent.append(apdu.hex().upper())
        return H(script[len(sent) - 1][1])

    session = ChipSession(chip)
    key = BacKey("L898902C", "690806", "940623")
    await session.basic_access_control(key, Nonces(RND_IFD, K_IFD))
    progress: list[tuple[str, int, int]] = []
    content = await session.read_file(0x011E, "COM", lambda *p: progress.append(p))
    assert sent == [command.upper() for command, _ in script]
    assert content == H("60145F0104303130365F36063034303030305C026175")
    assert progress == [("COM", 4, 22), ("COM", 22, 22)]


@dataclass
class Stack:
    host: RecordingHost
    sim: VirtualCardSimulator
    device: PcscCardReader


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, **settings: object) -> AsyncIterator[Stack]:
    """The driver on a vpcd slot, with the wire simulator that serves it."""
    host = RecordingHost()
    env = make_env(tmp_path)
    sim = VirtualCardSimulator("cardReader", host, env)
    config = sim.driver_settings(msgspec.convert(settings, PcscSettings))
    assert isinstance(config, PcscSettings)
    await sim.start()
    device = PcscCardReader("cardReader", host, env, config)
    try:
        async with running(device, host):
            yield Stack(host, sim, device)
    finally:
        await sim.aclose()


async def read(
    device: PcscCardReader, key: AccessKey = KEY, sink: list[tuple[str, Message]] | None = None
) -> IdentityResult:
    return await device.execute(
        "readIdentity", ReadIdentityParams(access_key=key), ctx(timeout=10, sink=sink)
    )


async def present(s: Stack, card: str = "default") -> None:
    await s.sim.sim_present_card(PresentCardParams(card=card))
    await s.host.wait_for(lambda: s.device.card_present)


@contextlib.asynccontextmanager
async def inserted(s: Stack, chip: EmrtdChip) -> AsyncIterator[VpcdCard]:
    """A chip built by the test, on the simulator's vpcd slot while the block runs."""
    card = VpcdCard(chip, CARD.atr, s.sim.slot, 0.0)
    task = asyncio.create_task(card.serve())
    try:
        await asyncio.wait_for(card.powered.wait(), 3)
        await s.host.wait_for(lambda: s.device.card_present)
        yield card
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_correct_read_passes_every_check(
    pcscd: Pcscd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with stack(tmp_path) as s:
        await present(s)
        events: list[tuple[str, Message]] = []
        identity = await read(s.device, sink=events)
        assert identity.mrz.document_number == "099000123"
        assert identity.mrz.optional_data == "079099000123"
        assert identity.dg13 is not None
        assert identity.dg13.full_name == "Nguyễn Văn Thử"
        assert identity.dg13.father_name == "Nguyễn Văn Thành"
        assert identity.face.mime == "image/jpeg"
        assert identity.face.data.startswith(b"\xff\xd8\xff")
        verdict = identity.passive_auth
        assert (verdict.hashes_valid, verdict.signature_valid, verdict.chain_valid) == (
            True,
            True,
            True,
        )
        assert (identity.chip_authentication, identity.active_authentication) == (True, True)
        files = {data.file for _name, data in events}  # type: ignore[attr-defined]
        assert files == {"COM", "SOD", "DG1", "DG2", "DG13", "DG14", "DG15"}
        # The 9-character MRZ document number opens it too; a card without DG13 reads as null.
        await read(s.device, msgspec.structs.replace(KEY, document_number="099000123"))
        await s.sim.sim_remove_card(NoParams())
        await s.host.wait_for(lambda: not s.device.card_present)
        await present(s, "noDg13")
        other = SPECIMEN_CARDS["noDg13"]
        without = await read(
            s.device,
            AccessKey(
                document_number=other.id_number,
                date_of_birth=other.date_of_birth,
                date_of_expiry=other.date_of_expiry,
            ),
        )
        assert without.dg13 is None
        assert without.passive_auth.hashes_valid
        assert (without.chip_authentication, without.active_authentication) == (None, None)
    for record in caplog.records:
        assert "Thử" not in record.getMessage()
        assert "079099000123" not in record.getMessage()


async def test_a_wrong_mrz_is_denied_after_one_attempt(pcscd: Pcscd, tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await present(s)
        card = s.sim._card
        assert card is not None
        with pytest.raises(AccessDenied, match="access denied"):
            await read(s.device, msgspec.structs.replace(KEY, date_of_birth="1990-01-16"))
        # SELECT and two READ BINARY of EF.CardAccess, MSE:Set AT, four GENERAL
        # AUTHENTICATE: one PACE run, refused at its last step, and no retry.
        assert card.apdus == 8
        assert (await read(s.device)).passive_auth.hashes_valid
        await s.sim.sim_remove_card(NoParams())
        await s.host.wait_for(lambda: not s.device.card_present)
        await present(s, "noDg13")
        card = s.sim._card
        assert card is not None
        other = SPECIMEN_CARDS["noDg13"]
        with pytest.raises(AccessDenied, match="MRZ data does not match"):
            await read(
                s.device,
                AccessKey(
                    document_number=other.id_number,
                    date_of_birth=other.date_of_birth,
                    date_of_expiry="2032-11-29",
                ),
            )
        # No EF.CardAccess (6A82), then SELECT, GET CHALLENGE, one EXTERNAL AUTHENTICATE.
        assert card.apdus == 4


async def test_a_can_opens_the_chip_with_pace_and_a_wrong_can_is_denied_once(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    async with stack(tmp_path) as s:
        await present(s)
        card = s.sim._card
        assert card is not None
        identity = await read(s.device, AccessKey(can="123456"))
        assert identity.mrz.optional_data == "079099000123"
        assert identity.passive_auth.hashes_valid
        before = card.apdus
        with pytest.raises(AccessDenied, match="the CAN does not match"):
            await read(s.device, AccessKey(can="123457"))
        # The chip is still in the last read's session: the first SELECT ends it and
        # is sent again; then the 8 APDUs of one PACE run, refused, and no retry.
        assert card.apdus - before == 9
        assert (await read(s.device, AccessKey(can="123456"))).passive_auth.signature_valid
        await s.sim.sim_remove_card(NoParams())
        await s.host.wait_for(lambda: not s.device.card_present)
        await present(s, "noDg13")
        with pytest.raises(AccessDenied, match="does not support a CAN"):
            await read(s.device, AccessKey(can="123456"))


async def test_pace_on_nist_p256(pcscd: Pcscd, tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        chip = EmrtdChip(card_files(CARD, pace_domain=NIST_P256), CARD.bac_key(), CARD.can)
        async with inserted(s, chip):
            assert (await read(s.device, AccessKey(can="123456"))).passive_auth.hashes_valid
            assert (await read(s.device)).passive_auth.hashes_valid


async def test_a_tampered_group_and_a_wrong_csca_are_reported(pcscd: Pcscd, tmp_path: Path) -> None:
    other = tmp_path / "other-csca"
    other.mkdir()
    (other / "other.pem").write_bytes(make_pki("other CSCA").csca_pem)
    async with stack(tmp_path, csca_dir=str(other)) as s:
        chip = EmrtdChip(card_files(CARD, tamper=2), CARD.bac_key(), CARD.can)
        async with inserted(s, chip):
            verdict = (await read(s.device)).passive_auth
    assert verdict.hashes_valid is False
    assert verdict.signature_valid is True
    assert verdict.chain_valid is False


async def test_a_cloned_chip_passes_passive_auth_but_fails_chip_and_active_auth(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    """Genuine files and SOD copied onto a chip that lacks the genuine private keys."""
    genuine = ChipKeys.generate()
    files = card_files(CARD, chip_keys=genuine)
    async with stack(tmp_path) as s:
        async with inserted(s, EmrtdChip(files, CARD.bac_key(), CARD.can, genuine)):
            real = await read(s.device, AccessKey(can="123456"))
        await s.host.wait_for(lambda: not s.device.card_present)
        clone = EmrtdChip(files, CARD.bac_key(), CARD.can, ChipKeys.generate())
        async with inserted(s, clone):
            cloned = await read(s.device, AccessKey(can="123456"))
            # The failed Chip Authentication ended that session; the next read starts over.
            again = await read(s.device)
    assert (real.chip_authentication, real.active_authentication) == (True, True)
    for verdict in (cloned, again):
        pa = verdict.passive_auth
        assert (pa.hashes_valid, pa.signature_valid, pa.chain_valid) == (True, True, True)
        assert verdict.mrz == real.mrz
        assert (verdict.chip_authentication, verdict.active_authentication) == (False, False)


async def test_chip_and_active_auth_after_bac_with_an_rsa_active_auth_key(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    """A BAC-only chip (3DES secure messaging) re-keyed to AES by Chip Authentication."""
    other = SPECIMEN_CARDS["noDg13"]
    keys = ChipKeys.generate(rsa_aa=True)
    chip = EmrtdChip(card_files(other, chip_keys=keys), other.bac_key(), None, keys)
    async with stack(tmp_path) as s, inserted(s, chip):
        identity = await read(
            s.device,
            AccessKey(
                document_number=other.id_number,
                date_of_birth=other.date_of_birth,
                date_of_expiry=other.date_of_expiry,
            ),
        )
    assert (identity.chip_authentication, identity.active_authentication) == (True, True)
    assert identity.passive_auth.hashes_valid


async def test_the_card_taken_away_mid_read_ends_it_without_identity(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    async with stack(tmp_path) as s:
        await present(s)
        events: list[tuple[str, Message]] = []
        reading = asyncio.create_task(read(s.device, sink=events))
        async with asyncio.timeout(5):
            while not events:
                await asyncio.sleep(0.005)
        await s.sim.sim_remove_card(NoParams())
        with pytest.raises(MediaError, match="card removed"):
            await reading
        await s.host.wait_for(lambda: not s.device.card_present)
        assert s.device.state is DeviceState.ONLINE


async def test_garbage_from_the_chip_is_a_hardware_error_and_the_reader_keeps_serving(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    async with stack(tmp_path) as s:
        await present(s)
        await s.sim.sim_fault(FaultParams(kind=FaultKind.GARBAGE))
        with pytest.raises(HardwareError):
            await read(s.device)
        assert (await read(s.device)).passive_auth.hashes_valid
        await s.sim.sim_fault(FaultParams(kind=FaultKind.HARDWARE_ERROR))
        with pytest.raises(HardwareError):
            await read(s.device)
        with pytest.raises(Unsupported):
            await s.sim.sim_fault(FaultParams(kind=FaultKind.DISCONNECT))


async def test_chip_io(pcscd: Pcscd, tmp_path: Path) -> None:
    async with stack(tmp_path, chip_io=True) as s:
        await present(s)
        answer = await s.device.execute(
            "chipIO", ChipIoParams(apdu=H("00a4040c07a0000002471001")), ctx()
        )
        assert answer.response == b"\x90\x00"
        assert s.device.capabilities() == {"chipIO": True, "pace": True}


async def test_the_reader_goes_offline_with_pcscd_and_comes_back_by_itself(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    with pcscd.alone() as alone:
        if not alone or not pcscd.owned:
            pytest.skip("this test restarts pcscd: another session uses it, or no test started it")
        host = RecordingHost()
        with all_vpcd_slots():
            settings = PcscSettings(reader=f"^{vpcd_reader(0)}$", poll_ms=200)
            device = PcscCardReader("cardReader", host, make_env(tmp_path), settings)
            async with running(device, host):
                await asyncio.to_thread(pcscd.stop)
                await host.wait_for(lambda: device.state is DeviceState.OFFLINE, 5)
                await asyncio.to_thread(pcscd.start)
                await host.wait_for(lambda: device.state is DeviceState.ONLINE, 10)


def test_another_session_leaving_does_not_stop_the_pcscd_this_one_uses(
    pcscd: Pcscd, tmp_path: Path
) -> None:
    """Sessions overlap (other checkouts, a CI run): the one that ends must not take pcscd along."""
    pid = PCSCD_PID.read_text(encoding="ascii")
    other = (
        "import pathlib, tests.pcsc_stack as s; "
        f"d = s.Pcscd(pathlib.Path({str(tmp_path / 'pcscd.log')!r})); d.acquire(); d.release()"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", other], cwd=root, check=True, timeout=60)
    assert pcscd_running()
    assert PCSCD_PID.read_text(encoding="ascii") == pid
