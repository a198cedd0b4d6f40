"""The daemon: devices, their supervisors and queues, the MQTT API, ordered start and stop.

Start-up: validate config (done by the caller), open the idempotency store,
create devices (nothing opens yet), then in one TaskGroup run the broker link,
the watchdog, the uplink and, once the link connected (or
:data:`FIRST_CONNECT_WAIT_S` passed), a supervisor per device and the queue
workers.  Once every device has left
``starting`` (or ``ready_timeout`` passed) the retained status says
``ready``/``degraded`` and systemd hears READY=1.
Shutdown, in an order that lets everything outlive what uses it: ``stopping``
(from here no supervisor starts a driver again and new requests are refused),
running commands cancelled and completed, supervisors ended, every device put
in its safe state, devices closed (their threads and executors), retained
``offline``, disconnect, then the simulators (their child processes) and the
idempotency store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from devices.base import (
    HEALTHY,
    AnyDevice,
    DeviceEnv,
    DeviceState,
    Message,
    SimAction,
    SimControl,
    WireSimulation,
)
from devices.cash.acceptor import share_one_till
from devices.errors import NotReady
from devices.registry import resolve, resolve_simulator
from devices.runtime.clock import now_ms
from devices.supervisor import supervise

from . import __version__
from .api.idempotency import IdempotencyStore
from .api.requests import Lifecycle
from .api.router import DAEMON_COMMANDS, ParamCommand, Router
from .api.schema import (
    CommandInfo,
    DaemonState,
    Description,
    DeviceInfo,
    DeviceStateMessage,
    EventMessage,
    Snapshot,
    Status,
    VietQRParams,
)
from .api.topics import Topics
from .config import Config
from .mqtt.codec import MSGPACK_CODEC
from .mqtt.link import Link, Will
from .notify import Notifier

if TYPE_CHECKING:
    from .uplink.client import Uplink

log = logging.getLogger(__name__)

#: systemd-timesyncd creates this file once the clock is synchronised.
CLOCK_SYNCED_FLAG = Path("/run/systemd/timesync/synchronized")
STALE_SCAN_S = 2.0
#: Seconds the uplink gets at shutdown to send its clean death and close its outbox.
UPLINK_STOP_S = 5.0
#: Seconds devices wait for the first broker connection before starting anyway: what
#: a driver announces at start (``depositRecovered``) then reaches the UIs, not the void.
FIRST_CONNECT_WAIT_S = 2.0
#: Seconds a cancelled device supervisor gets to unwind before the safe state.
SUPERVISOR_STOP_S = 2.0
#: Seconds cancelled commands get to end (and be completed) before the supervisors stop.
COMMAND_STOP_S = 2.0


def create_devices(
    config: Config,
    host: App | None,
    env: DeviceEnv,
    simulators: Mapping[str, WireSimulation] | None = None,
) -> dict[str, AnyDevice]:
    """Instantiate every configured device (opens no hardware).

    A device with a wire simulator in ``simulators`` gets its settings from
    :meth:`WireSimulation.driver_settings`.  The board's money acceptors (coins,
    notes) share one till: a deposit started on one takes money on all of them.
    """
    devices: dict[str, AnyDevice] = {}
    for entry in config.devices:
        spec = resolve(entry.device_class, entry.driver)
        settings = entry.settings
        if simulators and entry.id in simulators:
            settings = simulators[entry.id].driver_settings(settings)
        devices[entry.id] = spec.create(entry.id, host or _NullHost(), env, settings)
    share_one_till(devices.values())
    return devices


def create_simulators(
    config: Config, host: App | None, env: DeviceEnv
) -> dict[str, WireSimulation]:
    """Instantiate the wire simulators config names, by device id (starts nothing)."""
    return {
        entry.id: resolve_simulator(entry.device_class, entry.simulator)(
            entry.id, host or _NullHost(), env
        )
        for entry in config.devices
        if entry.simulator is not None
    }


class DeviceObserver(Protocol):
    """Hears every device state change and event after the daemon published it (the uplink)."""

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        """A device's state or detail changed."""

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """A device broadcast an event."""


class _NullHost:
    """Host for ``kioskd safe-state``: reports go nowhere."""

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        """Drop."""

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """Drop."""

    def sim_output(self, device_id: str, what: str, data: Message) -> None:
        """Drop."""


async def safe_state_configured(config: Config, env: DeviceEnv) -> dict[str, str | None]:
    """``kioskd safe-state``: every configured device in its safe state, without the daemon.

    A device backed by a wire simulator is made safe through it (the simulator
    runs for the duration), so ``--sim`` exercises the real driver's path.
    """
    simulators = create_simulators(config, None, env)
    devices = create_devices(config, None, env, simulators)
    try:
        for simulator in simulators.values():
            await simulator.start()
        return await safe_state_all(devices)
    finally:
        for simulator in simulators.values():
            await simulator.aclose()


async def safe_state_all(
    devices: dict[str, AnyDevice], timeout: float = 5.0
) -> dict[str, str | None]:
    """Run every device's ``safe_state()`` concurrently, each bounded by ``timeout`` seconds.

    Returns device id -> None on success or the error text.
    """

    async def one(device: AnyDevice) -> str | None:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow our own cancellation.
            async with asyncio.timeout(timeout):
                await device.safe_state()
        except Exception as exc:  # noqa: BLE001 - every device must be tried; errors are reported
            return f"{type(exc).__name__}: {exc}"
        return None

    ids = list(devices)
    results = await asyncio.gather(*(one(devices[i]) for i in ids))
    return dict(zip(ids, results, strict=True))


#: ``M_ARENA_MAX`` of glibc's ``mallopt`` (malloc.h).
_M_ARENA_MAX = -8
#: Malloc arenas the daemon's threads share.
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at :data:`MALLOC_ARENAS`: once per process, before any thread.

    glibc gives each thread that allocates an arena of its own, up to eight per core,
    and each keeps the memory freed in it: the daemon's worker threads (SQLite, slip
    rendering, GPIO, serial) made RSS creep while the Python heap stayed flat (a
    15-minute soak: +8.2 MB after warm-up by default, +0.3 MB with two arenas).  An
    explicit ``MALLOC_ARENA_MAX`` in the environment wins; without glibc this does nothing.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def release_freed_heap() -> None:
    """Hand the heap that start-up freed back to the kernel (glibc ``malloc_trim``).

    Imports and config parsing free a few hundred KiB that malloc would otherwise
    keep; the daemon's resident size after start-up is what a board budgets for
    (docs/performance.md).  Without glibc this does nothing.
    """
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    malloc_trim(0)


class App:
    """One daemon run.

    Args:
        config: the validated configuration (with broker host/port final).
        notifier: systemd notifications.
        ready_timeout: seconds to wait for devices to leave ``starting`` before
            publishing ``ready``/``degraded`` anyway.

    """

    def __init__(
        self, config: Config, notifier: Notifier | None = None, ready_timeout: float = 3.0
    ) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.ready_timeout = ready_timeout
        self.topics = Topics(config.board.id)
        self.session = secrets.token_hex(8)
        self.seq = 0
        self._status_state = DaemonState.STARTING
        self._since = now_ms()
        self._last_status: Status | None = None
        state_dir = Path(config.daemon.state_dir)
        env = DeviceEnv(config.board.id, state_dir, Path(config.daemon.runtime_dir))
        self.simulators = create_simulators(config, self, env)
        self.devices = create_devices(config, self, env, self.simulators)
        #: What serves each simulated device's ``sim/`` actions.
        self.sim_controls: dict[str, SimControl] = {
            device_id: self.simulators.get(device_id, device)
            for device_id, device in self.devices.items()
            if device_id in self.simulators or device.simulated
        }
        self.states: dict[str, DeviceStateMessage] = {}
        self.store = IdempotencyStore(
            state_dir / "idempotency.sqlite3",
            window_s=config.api.idempotency_window,
            max_records=config.api.idempotency_max_records,
            max_per_client=config.api.idempotency_max_per_client,
        )
        self.link = Link(
            host=config.mqtt.host,
            port=config.mqtt.port,
            client_id=config.mqtt.client_id or f"kioskd-{config.board.id}",
            will=Will(
                self.topics.status,
                MSGPACK_CODEC.encode(self._status(DaemonState.OFFLINE)),
                MSGPACK_CODEC.content_type,
            ),
            subscriptions=self.topics.subscriptions(
                with_sim=bool(self.sim_controls),
            ),
            on_connect=self._on_connect,
            on_message=self._on_message,
            username=config.mqtt.username,
            password=config.mqtt.password,
            keepalive=config.mqtt.keepalive,
            connect_timeout=config.mqtt.connect_timeout,
            reconnect_max=config.mqtt.reconnect_max,
        )
        self.lifecycle = Lifecycle(
            self._send_reply,
            self.store,
            max_queue=config.api.max_queue,
            max_per_client=config.api.max_queue_per_client,
        )
        for device in self.devices.values():
            self.lifecycle.add_device(device)
        self.router = Router(
            topics=self.topics,
            devices=self.devices,
            sim_controls=self.sim_controls,
            lifecycle=self.lifecycle,
            daemon_answers={
                "getStatus": self.status,
                "getCapabilities": self.description,
                "resync": self.snapshot,
            },
            clear_retained=self._clear_retained,
            max_payload=config.api.max_payload_bytes,
            legacy_topics=config.api.legacy_request_topics,
            staff_users=frozenset(config.api.staff_users),
            param_commands=self._param_commands(config),
        )
        self._stale_scan: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        #: Set once shutdown begins: supervisors then never (re)start a driver.
        self._stopping = asyncio.Event()
        self.uplink: Uplink | None = None
        if config.uplink.enabled:
            # Only a board with a fleet uplink loads it (TLS, cryptography: ~7 MiB).
            from .uplink.client import Uplink  # noqa: PLC0415

            self.uplink = Uplink(config, self)
        self.observers: list[DeviceObserver] = [self.uplink] if self.uplink else []

    # -- DeviceHost --------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        """Publish a device's retained state and re-evaluate the daemon status."""
        message = DeviceStateMessage(
            state=state,
            detail=detail,
            session=self.session,
            seq=self._next_seq(),
            ts=now_ms(),
        )
        self.states[device_id] = message
        self._publish(self.topics.device_state(device_id), message, retain=True)
        self._refresh_status()
        for observer in self.observers:
            observer.device_state(device_id, state, detail)

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """Publish an unsolicited device event."""
        message = EventMessage(session=self.session, seq=self._next_seq(), ts=now_ms(), data=data)
        self._publish(self.topics.device_event(device_id, event), message)
        for observer in self.observers:
            observer.device_event(device_id, event, data)

    def sim_output(self, device_id: str, what: str, data: Message) -> None:
        """Publish what a simulated device shows the world."""
        self._publish(self.topics.sim_output(device_id, what), data)

    # -- status ----------------------------------------------------------------

    def _status(self, state: DaemonState, reasons: list[str] | None = None) -> Status:
        return Status(
            state=state,
            reasons=reasons or [],
            version=__version__,
            session=self.session,
            since=self._since,
            clock_synced=CLOCK_SYNCED_FLAG.exists(),
        )

    def reasons(self) -> list[str]:
        """Why the daemon is degraded (empty when it is not)."""
        found: list[str] = []
        for device in self.devices.values():
            if device.state not in HEALTHY:
                found.append(f"{device.id}:{device.state.value}")
            found.extend(device.status_reasons())
        return found

    @staticmethod
    def _param_commands(config: Config) -> dict[str, ParamCommand]:
        """Daemon commands with parameters that ``config`` enables (``[vietqr]``)."""
        vietqr = config.vietqr
        if vietqr is None:
            return {}
        from .payments.command import vietqr_payload  # noqa: PLC0415 - only with [vietqr]

        return {
            "vietqrPayload": ParamCommand(VietQRParams, functools.partial(vietqr_payload, vietqr)),
        }

    def status(self) -> Status:
        """The current status message."""
        if self._last_status is None:
            return self._status(self._status_state, self.reasons())
        return self._last_status

    def _refresh_status(self) -> None:
        state = self._status_state
        reasons = self.reasons()
        if state in (DaemonState.READY, DaemonState.DEGRADED):
            state = DaemonState.DEGRADED if reasons else DaemonState.READY
        last = self._last_status
        if last is not None and last.state is state and last.reasons == reasons:
            return
        if last is None or last.state is not state:
            self._since = now_ms()
        self._status_state = state
        self._last_status = self._status(state, reasons)
        self._publish(self.topics.status, self._last_status, retain=True)

    def _set_phase(self, state: DaemonState) -> None:
        self._status_state = state
        self._refresh_status()

    def _sim_actions(self, device_id: str) -> Mapping[str, SimAction]:
        control = self.sim_controls.get(device_id)
        return control.sim_actions if control is not None else {}

    def description(self) -> Description:
        """Every device with its commands, events and capabilities."""
        infos = []
        for entry in self.config.devices:
            device = self.devices[entry.id]
            infos.append(
                DeviceInfo(
                    id=device.id,
                    device_class=device.device_class,
                    driver=entry.driver,
                    simulated=entry.id in self.sim_controls,
                    commands={
                        name: CommandInfo(
                            default_timeout_ms=c.default_timeout_ms,
                            max_timeout_ms=c.max_timeout_ms,
                            long=c.long,
                            queued=c.queued,
                            side_effect=c.side_effect,
                        )
                        for name, c in device.commands.items()
                    },
                    events=list(device.events),
                    capabilities=dict(device.capabilities()),
                    sim_actions=list(self._sim_actions(entry.id)),
                ),
            )
        return Description(
            board=self.config.board.id,
            version=__version__,
            session=self.session,
            devices=infos,
            daemon_commands=[*DAEMON_COMMANDS, *self.router.param_commands],
        )

    def snapshot(self) -> Snapshot:
        """The answer to ``resync``."""
        return Snapshot(
            session=self.session, seq=self.seq, status=self.status(), states=dict(self.states)
        )

    # -- MQTT ------------------------------------------------------------------

    def _publish(self, topic: str, message: msgspec.Struct, *, retain: bool = False) -> None:
        self.link.publish(
            topic,
            MSGPACK_CODEC.encode(message),
            content_type=MSGPACK_CODEC.content_type,
            retain=retain,
        )

    def _send_reply(
        self, topic: str, payload: bytes, content_type: str, correlation: bytes | None
    ) -> None:
        self.link.publish(topic, payload, content_type=content_type, correlation=correlation)

    def _clear_retained(self, topic: str) -> None:
        self.link.publish(topic, b"", content_type=MSGPACK_CODEC.content_type, retain=True)

    def _on_message(self, message: object) -> None:
        self.router.handle(message)  # type: ignore[arg-type]

    async def _on_connect(self) -> None:
        """(Re)publish every retained message; look for stale device states briefly."""
        self._last_status = None
        self._refresh_status()
        self._publish(self.topics.description, self.description(), retain=True)
        for device_id, message in self.states.items():
            self._publish(self.topics.device_state(device_id), message, retain=True)
        if self._stale_scan is None or self._stale_scan.done():
            self._stale_scan = asyncio.get_running_loop().create_task(
                self._scan_stale(),
                name="stale-retained-scan",
            )

    async def _scan_stale(self) -> None:
        topic_filter = self.topics.stale_state_filter()
        await self.link.subscribe(topic_filter)
        await asyncio.sleep(STALE_SCAN_S)
        await self.link.unsubscribe(topic_filter)

    async def restart_device(self, device_id: str) -> None:
        """Stop a device's driver and start it again, like unplugging and replugging it.

        Raises:
            KeyError: no such device (or the daemon is not running).
            NotReady: the daemon is stopping.

        """
        task = self._supervisors[device_id]
        device = self.devices[device_id]
        assert self._group is not None
        if self._stopping.is_set():
            raise NotReady("the daemon is stopping")
        task.cancel()
        await asyncio.wait({task})
        if self._stopping.is_set():
            raise NotReady("the daemon is stopping")
        device.set_condition(DeviceState.STARTING)
        self._supervisors[device_id] = self._group.create_task(
            supervise(device, stopping=self._stopping), name=f"supervise-{device_id}"
        )

    # -- run -------------------------------------------------------------------

    async def _become_ready(self) -> None:
        await self.link.connected.wait()
        loop = asyncio.get_running_loop()
        until = loop.time() + self.ready_timeout
        while any(d.state is DeviceState.STARTING for d in self.devices.values()):
            if loop.time() >= until:
                break
            await asyncio.sleep(0.01)
        self._set_phase(DaemonState.READY)
        # Start-up objects live as long as the daemon: keep them out of full collections,
        # which otherwise paused the loop 20-30 ms every few hundred commands.
        gc.freeze()
        release_freed_heap()
        await self.link.flush()
        self.notifier.notify("READY=1")
        log.info(
            "kioskd %s ready: board %s, session %s", __version__, self.config.board.id, self.session
        )

    async def _stop_devices(self, queues: asyncio.Task[None]) -> None:
        """Stop commands, then supervisors, then make every device safe and close it.

        Each step waits for the one before, so no driver restarts after stopping
        began and no task uses a thread, executor or port that was closed under
        it.  Commands get :data:`COMMAND_STOP_S` seconds, supervisors
        :data:`SUPERVISOR_STOP_S` (see :meth:`_end_supervisors`).  An overrun is
        logged; a device whose driver (or any command) still runs is then made
        safe but not closed: process exit releases what it holds.
        """
        self._stopping.set()
        self.lifecycle.close()
        self._set_phase(DaemonState.STOPPING)
        queues.cancel()
        _, late = await asyncio.wait({queues}, timeout=COMMAND_STOP_S)
        if late:
            log.error("commands still running %g s after the stop", COMMAND_STOP_S)
        # A driver unwinding (closing its port, ending a retry) must be done before
        # safe_state() talks to the same hardware.
        running = await self._end_supervisors()
        failures = await safe_state_all(self.devices)
        for device_id, error in failures.items():
            if error is not None:
                log.error("safe state of %s failed: %s", device_id, error)
        for device in self.devices.values():
            if device.id not in running and not late:
                await device.aclose()

    async def _end_supervisors(self) -> set[str]:
        """Cancel every supervisor and wait for it; return the ids of those still running.

        Each round waits up to :data:`SUPERVISOR_STOP_S` seconds.  A driver still
        running after the first has lost its cancellation (a library that swallows
        it, as ``asyncio.wait_for`` on Python 3.11 does when the awaited call
        completes at the same moment): that is logged as the bug it is, and the
        driver is cancelled once more.  ``stopping`` is set, so whatever ends its
        ``run()`` the supervisor does not start it again.
        """
        pending = set(self._supervisors.values())
        for attempt in range(2):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=SUPERVISOR_STOP_S)
            if pending:
                log.error(
                    "drivers still running %g s after being cancelled: %s%s",
                    SUPERVISOR_STOP_S,
                    ", ".join(sorted(t.get_name() for t in pending)),
                    "; cancelling them again" if attempt == 0 else "; left running",
                )
        return {i for i, task in self._supervisors.items() if not task.done()}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down in order."""
        await self.store.open()
        try:
            for simulator in self.simulators.values():
                await simulator.start()
            async with asyncio.TaskGroup() as group:
                self._group = group
                link = group.create_task(self.link.run(), name="mqtt-link")
                watchdog = group.create_task(self.notifier.watchdog(), name="watchdog")
                uplink = (
                    None
                    if self.uplink is None
                    else group.create_task(self.uplink.run(), name="uplink")
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FIRST_CONNECT_WAIT_S):
                        await self.link.connected.wait()
                self._supervisors = {
                    d.id: group.create_task(
                        supervise(d, stopping=self._stopping), name=f"supervise-{d.id}"
                    )
                    for d in self.devices.values()
                }
                queues = group.create_task(self.lifecycle.serve(), name="queues")
                ready = group.create_task(self._become_ready(), name="ready")
                await stop.wait()
                self.notifier.notify("STOPPING=1")
                ready.cancel()
                await self._stop_devices(queues)
                self._publish(self.topics.status, self._status(DaemonState.OFFLINE), retain=True)
                await self.link.flush()
                if self.uplink is not None and uplink is not None:
                    self.uplink.stop()  # a clean death upstream, then the outbox closes
                    await asyncio.wait({uplink}, timeout=UPLINK_STOP_S)
                    uplink.cancel()
                link.cancel()
                watchdog.cancel()
                if self._stale_scan is not None:
                    self._stale_scan.cancel()
        finally:
            for simulator in self.simulators.values():
                await simulator.aclose()
            await self.store.close()
        log.info("kioskd stopped")
