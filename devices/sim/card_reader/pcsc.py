"""The ``pcsc`` wire simulator: specimen cards on a vpcd reader, for the real PC/SC driver.

``presentCard`` builds the card's chip (files signed under the test PKI) and
connects it to one of vpcd's two slots; it completes once pcscd has powered
it.  ``removeCard`` disconnects it and completes once pcscd reports the
reader empty.  The driver is pointed at that slot's reader and, unless its
config names a CSCA folder, at one holding the test CSCA.

Slots are shared by every process on the machine (one pcscd), so each
simulator holds an advisory lock on its slot for its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import tempfile
import time
from pathlib import Path
from typing import IO, ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, NoParams, NoResult
from devices.card_reader.pcsc import PcscSettings
from devices.errors import HardwareError, InvalidData, SequenceError, Unsupported
from devices.sim.card_reader.actions import PRESENT_CARD, REMOVE_CARD, PresentCardParams
from devices.sim.card_reader.specimen_cards import SPECIMEN_CARDS
from devices.sim.card_reader.vcard.chip import ChipFault, EmrtdChip
from devices.sim.card_reader.vcard.files import ChipKeys, card_files, shared_pki
from devices.sim.card_reader.vcard.vpcd import VpcdCard
from devices.sim.support.faults import FAULT_ACTION, FaultKind, FaultParams
from devices.sim.support.wire import WireSimulator
from devices.transports.pcsc import PcscContext

#: vpcd's readers (reader.conf.d/vpcd): slot n is "Virtual PCD 00 0n" on port 35963 + n.
VPCD_SLOTS = 2
#: A contactless chip's turnaround per APDU, s (a 223-byte READ BINARY at 424 kbit/s and
#: the chip's own work); keeps a read long enough to take the card away in the middle.
CHIP_APDU_S = 0.01
#: Deadline for pcscd to power a card or see it gone, s. pcscd notices both at its next
#: reader poll (every 0.4 s) and is slower on a busy machine.
_POWER_TIMEOUT_S = 10.0
_POLL_MS = 200
#: How long a simulator waits for a vpcd slot that another virtual card holds, s: test
#: runs overlap on one machine (two slots for all of them; each test holds one for
#: a few seconds), and a third run's card failed at once while two held them.
SLOT_WAIT_S = 60.0
_SLOT_POLL_S = 0.05


def vpcd_reader(slot: int) -> str:
    """The PC/SC name of vpcd's reader for ``slot``."""
    return f"Virtual PCD 00 {slot:02d}"


def slot_lock_path(slot: int) -> Path:
    """The machine-wide advisory lock file of a vpcd slot."""
    return Path(tempfile.gettempdir()) / f"kioskd-vpcd-slot-{slot}.lock"


def claim_slot(*, wait_s: float = 0.0) -> tuple[int, IO[bytes]]:
    """Lock a free vpcd slot; return it and the open lock file (closing it frees the slot).

    ``wait_s``: how long to wait for a slot to come free, s (blocking: a slot is
    claimed while the simulator is set up, before it runs).

    Raises:
        OSError: every slot stayed in use by other virtual cards.

    """
    until = time.monotonic() + wait_s
    while True:
        for slot in range(VPCD_SLOTS):
            handle = slot_lock_path(slot).open("ab")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return slot, handle
        if time.monotonic() >= until:
            raise OSError("every vpcd slot is in use by another virtual card on this machine")
        time.sleep(_SLOT_POLL_S)


class VirtualCardSimulator(WireSimulator):
    """Specimen cards for the ``pcsc`` driver, through pcscd and vpcd."""

    device_class: ClassVar[str] = "cardReader"

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        super().__init__(device_id, host, env)
        self._slot: int | None = None
        self._lock: IO[bytes] | None = None
        self._csca_dir: Path | None = None
        self._card: VpcdCard | None = None
        self._task: asyncio.Task[None] | None = None
        self._apdu_s = CHIP_APDU_S
        self._fault: ChipFault | None = None

    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """Point the driver at this simulator's vpcd reader and, if unset, the test CSCA.

        Raises:
            TypeError: not the ``pcsc`` driver's settings.
            OSError: no vpcd slot came free within ``SLOT_WAIT_S``.

        """
        if not isinstance(settings, PcscSettings):
            raise TypeError("the pcsc wire simulator serves the pcsc driver")
        self._slot, self._lock = claim_slot(wait_s=SLOT_WAIT_S)
        csca_dir = settings.csca_dir
        if csca_dir is None:
            self._csca_dir = self.env.runtime_dir / f"{self.device_id}-csca"
            csca_dir = str(self._csca_dir)
        return msgspec.structs.replace(
            settings, reader=f"^{vpcd_reader(self._slot)}$", csca_dir=csca_dir
        )

    async def start(self) -> None:
        """Write the test CSCA where the driver looks for it (when it was unset)."""
        if self._csca_dir is not None:
            await asyncio.to_thread(self._write_csca, self._csca_dir)

    @staticmethod
    def _write_csca(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "test-csca.pem").write_bytes(shared_pki().csca_pem)

    async def aclose(self) -> None:
        """Take any card away, wait until pcscd sees the reader empty, and free the slot.

        The next user of the slot then starts with a reader pcscd knows is empty.
        """
        if self._card is not None:
            await self._take_away()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def slot(self) -> int:
        """The vpcd slot this simulator serves.

        Raises:
            RuntimeError: before :meth:`driver_settings`.

        """
        if self._slot is None:
            raise RuntimeError("no vpcd slot claimed yet")
        return self._slot

    @PRESENT_CARD
    async def sim_present_card(self, params: PresentCardParams) -> NoResult:
        """Insert a specimen card; complete once pcscd has powered it and reports it present.

        pcscd powers the card before it publishes the reader's new state: a client
        asking in between still hears "no card", so both are waited for.

        Raises:
            InvalidData: no specimen card of that name.
            SequenceError: a card is already on the reader.
            HardwareError: vpcd is not reachable or pcscd never powered the card.

        """
        card = SPECIMEN_CARDS.get(params.card)
        if card is None:
            raise InvalidData(
                f"no specimen card {params.card!r} (known: {', '.join(SPECIMEN_CARDS)})"
            )
        if self._card is not None:
            raise SequenceError("a card is already on the reader; remove it first")
        # A card with a CAN models a recent chip: PACE, Chip and Active Authentication.
        keys = ChipKeys.generate() if card.can is not None else None
        chip = EmrtdChip(card_files(card, chip_keys=keys), card.bac_key(), card.can, keys)
        chip.fault = self._fault
        self._card = VpcdCard(chip, card.atr, self.slot, self._apdu_s)
        self._task = asyncio.create_task(self._card.serve(), name=f"vcard-{self.device_id}")
        powered = asyncio.create_task(self._card.powered.wait())
        done, _ = await asyncio.wait(
            {powered, self._task}, timeout=_POWER_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if powered not in done or not await self._reader_shows(present=True):
            powered.cancel()
            await self._disconnect()
            raise HardwareError(
                f"pcscd did not power the virtual card on {vpcd_reader(self.slot)} "
                "(is pcscd running with vsmartcard-vpcd?)"
            )
        return NoResult()

    @REMOVE_CARD
    async def sim_remove_card(self, _params: NoParams) -> NoResult:
        """Take the card away; complete once pcscd reports the reader empty.

        Raises:
            SequenceError: no card on the reader.

        """
        if self._card is None:
            raise SequenceError("no card on the reader")
        await self._take_away()
        return NoResult()

    async def _take_away(self) -> None:
        """Disconnect from vpcd; return once pcscd reports the reader empty (bounded)."""
        await self._disconnect()
        await self._reader_shows(present=False)

    async def _reader_shows(self, *, present: bool) -> bool:
        """Wait until pcscd reports a card on the slot's reader (``present``) or none.

        Returns False if it did not within :data:`_POWER_TIMEOUT_S` or PC/SC failed.
        """
        with contextlib.suppress(OSError, HardwareError, TimeoutError):
            async with (
                asyncio.timeout(_POWER_TIMEOUT_S),
                PcscContext(f"{self.device_id}-sim") as pcsc,
            ):
                reader = vpcd_reader(self.slot)
                status = await pcsc.wait_status(reader, None, 0)
                while status.present != present:
                    status = await pcsc.wait_status(reader, status, _POLL_MS)
                return True
        return False

    async def _disconnect(self) -> None:
        task, self._task, self._card = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    @FAULT_ACTION
    async def sim_fault(self, params: FaultParams) -> NoResult:
        """Make the chip misbehave: ``slow``, ``garbage`` (once), ``hardwareError``; ``clear``.

        Raises:
            Unsupported: ``disconnect`` and ``jam``: vpcd's reader cannot be
                unplugged (restart pcscd to take it away) and a card has no jam.

        """
        match params.kind:
            case FaultKind.SLOW:
                self._apdu_s = params.delay_ms / 1000
            case FaultKind.GARBAGE:
                self._fault = ChipFault.GARBAGE
            case FaultKind.HARDWARE_ERROR:
                self._fault = ChipFault.DEAD
            case FaultKind.CLEAR:
                self._apdu_s, self._fault = CHIP_APDU_S, None
            case _:
                raise Unsupported(
                    f"fault {params.kind} is not available with a virtual card on vpcd: "
                    "its reader cannot be unplugged (restart pcscd to take it away)"
                )
        if self._card is not None:
            self._card.apdu_delay_s = self._apdu_s
            self._card.chip.fault = self._fault
        return NoResult()
