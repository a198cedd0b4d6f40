"""The ``lockers`` device class: compartments numbered from 1, each with a lock and a door sensor.

``open`` releases one compartment's lock and completes when its door is seen
open; the citizen pulls the door.  A door that stays open longer than
``left_open_ms`` raises ``compartmentLeftOpen`` and puts the device in
``userError`` (a person shuts it) until every left-open door is closed.

Staff load compartments with ``assign`` (the technician's ``kioskd lockers
assign``), which opens a door like ``open`` and, with a ``code`` (the dossier
code printed on the slip), gives the compartment that code.  A citizen's
``open`` must carry the code: the daemon checks it against the salted hash
kept by :mod:`devices.lockers.codes`, refuses a wrong or missing one (a few
wrong ones lock the compartment out for a while), and uses the assignment up
once the door opened.  A staff requester (``ctx.staff``) may ``open`` without a
code; its open leaves the assignment alone.  A compartment opened by ``open``
that is still occupied when its door closes raises ``compartmentNotEmptied``.
Drivers may record every open and every refused code for disputes
(:meth:`Lockers._audit`).

Drivers release and re-lock locks and report door and occupancy sensors
through :meth:`Lockers.door_sensed` and :meth:`Lockers.occupied_sensed`; the
class holds the rest.  The state detail is
``compartments``: a map from the compartment number as a decimal string
(``"1"`` .. ``"8"``; JSON map keys are strings) to :class:`CompartmentState`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import sqlite3
from dataclasses import dataclass
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from devices.base import (
    CommandContext,
    Device,
    DeviceEnv,
    DeviceHost,
    DeviceState,
    Message,
    NoResult,
    OpenClosed,
    Params,
    SettingsT_co,
    command,
)
from devices.errors import AccessDenied, FraudAttempt, InvalidData, SequenceError, Timeout

from .codes import MAX_CODE_CHARS, CodeStore, Verdict, codes_path

log = logging.getLogger(__name__)

#: A compartment number (from 1; the upper bound is ``capabilities.compartments``).
Compartment = Annotated[int, Meta(ge=1, description="compartment number, from 1")]


class CompartmentState(Message):
    """One compartment in the state detail."""

    door: OpenClosed = OpenClosed.CLOSED
    occupied: Annotated[
        bool | None,
        Meta(description="something inside; null: no occupancy sensor fitted"),
    ] = None
    left_open: Annotated[
        bool,
        Meta(description="open longer than the left-open limit (device userError)"),
    ] = False


class LockersDetail(Message):
    """State detail of a locker bank."""

    compartments: Annotated[
        dict[str, CompartmentState],
        Meta(description="by compartment number as a decimal string: `1`, `2`, ..."),
    ] = msgspec.field(default_factory=dict)


#: A collection code as typed or scanned (compared blank-trimmed and in upper case).
Code = Annotated[str, Meta(min_length=1, max_length=MAX_CODE_CHARS)]


class OpenParams(Params):
    """``open`` parameters."""

    compartment: Compartment
    code: Annotated[
        Code | None,
        Meta(
            description="the code staff assigned the compartment (the dossier code on the"
            " slip); required unless the requester is staff"
        ),
    ] = None


class AssignParams(Params):
    """``assign`` parameters."""

    compartment: Compartment
    code: Annotated[
        Code | None,
        Meta(
            description="the code a citizen will open it with (the dossier code on the slip);"
            " replaces the compartment's code once its door opened; none: the code is kept"
        ),
    ] = None


class CompartmentEvent(Message):
    """Data of ``compartmentOpened``, ``compartmentClosed`` and ``compartmentLeftOpen``."""

    compartment: Compartment


@dataclass(frozen=True, slots=True)
class LockerLayout:
    """The bank's size and time limits.

    Attributes:
        compartments: number of compartments, numbered 1..compartments.
        open_timeout_s: ``open`` fails when the door is not opened within this, seconds.
        left_open_s: a door open longer than this is left open, seconds.

    """

    compartments: int
    open_timeout_s: float
    left_open_s: float


class Lockers(Device[SettingsT_co, LockersDetail]):
    """Base of locker drivers."""

    device_class: ClassVar[str] = "lockers"
    events: ClassVar[dict[str, type[Message]]] = {
        "compartmentOpened": CompartmentEvent,
        "compartmentClosed": CompartmentEvent,
        "compartmentLeftOpen": CompartmentEvent,
        "compartmentNotEmptied": CompartmentEvent,
    }
    detail_type = LockersDetail

    def __init__(
        self, device_id: str, host: DeviceHost, env: DeviceEnv, settings: SettingsT_co
    ) -> None:
        super().__init__(device_id, host, env, settings)
        self._doors: dict[int, OpenClosed] = {}
        self._left_open: set[int] = set()
        self._occupied: dict[int, bool] = {}
        self._collecting: set[int] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.codes = CodeStore(codes_path(env.state_dir, device_id))

    # --- what drivers implement ------------------------------------------------------

    @property
    @abc.abstractmethod
    def layout(self) -> LockerLayout:
        """The bank's size and time limits, from the driver's settings."""

    @abc.abstractmethod
    async def _release(self, compartment: int) -> None:
        """Release the compartment's lock so its door can be pulled open."""

    @abc.abstractmethod
    async def _relock(self, compartment: int) -> None:
        """Undo :meth:`_release`: the latch holds the door again once it is shut."""

    @abc.abstractmethod
    async def _relock_all(self) -> None:
        """De-energise every lock (the safe state)."""

    async def _audit(
        self, action: str, compartment: int, ctx: CommandContext, outcome: str
    ) -> None:
        """Record one ``open``/``assign`` and how it ended; by default nothing is kept.

        ``outcome``: ``opened``, ``timeOut``, ``canceled``, ``error``, or for an
        ``open`` refused before its lock moved ``noCode``, ``wrongCode``, ``lockedOut``.
        """

    # --- what drivers call -----------------------------------------------------------

    def door(self, compartment: int) -> OpenClosed:
        """Return a compartment's door as last sensed (closed until reported)."""
        return self._doors.get(compartment, OpenClosed.CLOSED)

    def door_sensed(self, compartment: int, door: OpenClosed) -> None:
        """Report a door sensor.

        The first report of a compartment only records it; later changes raise
        ``compartmentOpened``/``compartmentClosed`` and run the left-open timer.
        """
        known = compartment in self._doors
        if known and self._doors[compartment] is door:
            return
        self._doors[compartment] = door
        if door is OpenClosed.OPEN:
            loop = asyncio.get_running_loop()
            self._timers[compartment] = loop.call_later(
                self.layout.left_open_s,
                self._door_left_open,
                compartment,
            )
        else:
            timer = self._timers.pop(compartment, None)
            if timer is not None:
                timer.cancel()
            self._left_open.discard(compartment)
        self._publish_doors()
        if known:
            name = "compartmentOpened" if door is OpenClosed.OPEN else "compartmentClosed"
            self.emit(name, CompartmentEvent(compartment=compartment))
        if door is OpenClosed.CLOSED and compartment in self._collecting:
            self._collecting.discard(compartment)
            if self._occupied.get(compartment):
                self.emit("compartmentNotEmptied", CompartmentEvent(compartment=compartment))
        self.refresh_condition()
        self.wake()

    def occupied_sensed(self, compartment: int, occupied: bool) -> None:
        """Report a compartment's occupancy sensor (only drivers that have one)."""
        if self._occupied.get(compartment) is not occupied:
            self._occupied[compartment] = occupied
            self._publish_doors()

    def refresh_condition(self) -> None:
        """Switch between online and userError by whether any door is left open.

        Leaves other conditions (offline, hardwareError, ...) alone.
        """
        if self.condition in (DeviceState.ONLINE, DeviceState.USER_ERROR):
            self.set_condition(DeviceState.USER_ERROR if self._left_open else DeviceState.ONLINE)

    def _door_left_open(self, compartment: int) -> None:
        self._timers.pop(compartment, None)
        self._left_open.add(compartment)
        self._publish_doors()
        self.emit("compartmentLeftOpen", CompartmentEvent(compartment=compartment))
        self.refresh_condition()

    def _publish_doors(self) -> None:
        self.update_detail(
            compartments={
                str(n): CompartmentState(
                    door=self.door(n),
                    occupied=self._occupied.get(n),
                    left_open=n in self._left_open,
                )
                for n in range(1, self.layout.compartments + 1)
            },
        )

    # --- commands ----------------------------------------------------------------------

    # Not long: it ends by itself within open_timeout_ms (at most 120 s); a shorter
    # deadline ends it earlier (the lock is re-engaged either way).
    @command("open", OpenParams, NoResult, 60_000, 180_000, side_effect=True)
    async def open_compartment(self, params: OpenParams, ctx: CommandContext) -> NoResult:
        """Release a compartment's lock for a citizen; complete when its door is seen open.

        The citizen's code is checked first (a staff requester may give none);
        a right one is used up once the door opened.

        Raises:
            InvalidData: no such compartment, or no code from a non-staff requester.
            AccessDenied: a wrong code (or the compartment holds no assignment).
            FraudAttempt: the compartment is locked out after too many wrong codes.
            sqlite3.Error: the codes cannot be read (nothing opens).
            others: as :meth:`_unlock_until_open`.

        """
        n = self._number(params.compartment)
        if params.code is not None:
            await self._prove(n, params.code, ctx)
        elif not ctx.staff:
            await self._audit("open", n, ctx, "noCode")
            raise InvalidData(
                f"opening compartment {n} needs `code`: the dossier code printed on the slip"
            )
        await self._unlock_until_open("open", n, ctx)
        self._collecting.add(n)
        if params.code is not None:
            try:
                await self.codes.collected(n)
            except sqlite3.Error:
                log.exception("%s: compartment %d opened, its code not used up", self.id, n)
        return NoResult()

    async def _prove(self, n: int, code: str, ctx: CommandContext) -> None:
        """Check a citizen's code for compartment ``n``; audit and raise if refused."""
        check = await self.codes.check(n, code)
        if check.verdict is Verdict.RIGHT:
            return
        minutes = max(1, math.ceil(check.locked_for_s / 60))
        if check.verdict is Verdict.LOCKED_OUT:
            await self._audit("open", n, ctx, "lockedOut")
            raise FraudAttempt(
                f"compartment {n} refuses codes for {minutes} more min after"
                f" {self.codes.max_wrong} wrong codes: ask staff"
            )
        await self._audit("open", n, ctx, "wrongCode")
        if check.tries_left == 0:
            raise AccessDenied(
                f"wrong code for compartment {n}: it now refuses codes for {minutes} min"
            )
        raise AccessDenied(
            f"wrong code for compartment {n} ({check.tries_left} tries left before a lockout)"
        )

    # A technician loading a compartment; the same sequence, audited as a load.
    @command("assign", AssignParams, NoResult, 60_000, 180_000, side_effect=True, staff=True)
    async def assign_compartment(self, params: AssignParams, ctx: CommandContext) -> NoResult:
        """Open a compartment for staff to load; complete when its door is seen open.

        With a ``code``, the compartment takes that code once its door opened
        (a fresh salt; wrong-code count and lockout cleared).

        Raises:
            sqlite3.Error: the code cannot be stored (the door did open).
            others: as :meth:`_unlock_until_open`.

        """
        n = self._number(params.compartment)
        await self._unlock_until_open("assign", n, ctx)
        self._collecting.discard(n)
        if params.code is not None:
            await self.codes.assign(n, params.code)
        return NoResult()

    def _number(self, n: int) -> int:
        """``n`` if the bank has that compartment.

        Raises:
            InvalidData: no such compartment.

        """
        count = self.layout.compartments
        if not 1 <= n <= count:
            raise InvalidData(f"compartment must be 1 to {count} (found {n})")
        return n

    async def _unlock_until_open(self, action: str, n: int, ctx: CommandContext) -> None:
        """Release a compartment's lock; return when its door is seen open.

        The lock is re-engaged however the command ends, so a door not opened
        in time stays shut.

        Raises:
            InvalidData: no such compartment.
            SequenceError: the door is already open.
            Timeout: the door was not opened within ``open_timeout_ms``.
            Offline, HardwareError: the controller is unreachable or failed.

        """
        self._number(n)
        if self.door(n) is OpenClosed.OPEN:
            raise SequenceError(f"compartment {n} is already open")
        timeout_s = self.layout.open_timeout_s
        outcome = "error"
        try:
            await self._release(n)
            if not await self.wait_until(lambda: self.door(n) is OpenClosed.OPEN, timeout_s):
                outcome = "timeOut"
                raise Timeout(f"compartment {n} was not opened within {timeout_s:g} s")
            outcome = "opened"
        except asyncio.CancelledError:
            # The daemon cancels a command at its deadline too: that one is a timeOut.
            late = asyncio.get_running_loop().time() >= ctx.deadline
            outcome = "timeOut" if late else "canceled"
            raise
        finally:
            await self._relock(n)
            await self._audit(action, n, ctx, outcome)

    def capabilities(self) -> dict[str, object]:
        """``compartments``: how many, numbered from 1."""
        return {"compartments": self.layout.compartments}

    async def safe_state(self) -> None:
        """Every lock de-energised (closed doors stay latched)."""
        await self._relock_all()

    async def aclose(self) -> None:
        """Close the codes store: finish its queued writes, stop its thread."""
        await self.codes.close()
