"""Keeps one device running: start, mark offline on failure, retry with backoff.

One supervisor task per device, so one device's failure never touches the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .base import AnyDevice, DeviceState
from .errors import DeviceError, Offline
from .runtime.backoff import Backoff

log = logging.getLogger(__name__)


async def supervise(
    device: AnyDevice,
    *,
    stopping: asyncio.Event | None = None,
    backoff_min_s: float = 0.2,
    backoff_max_s: float = 2.0,
    stable_after_s: float = 10.0,
) -> None:
    """Run ``device.run()``, restarting it after failures, until cancelled or ``stopping``.

    Backoff (:mod:`devices.runtime.backoff`) draws each wait between
    ``backoff_min_s`` and a ceiling that doubles from ``backoff_min_s`` to
    ``backoff_max_s`` (seconds), and starts over after a run that lasted
    ``stable_after_s``.  The
    default cap keeps "replugged -> online" within about two seconds.

    Once ``stopping`` is set the driver is never started again: a ``run()``
    that ends then (its link closed under it, a cancellation it lost) ends the
    supervisor, and a backoff wait ends at once.  The caller sets ``stopping``
    before it cancels the task, so no restart can race the daemon's shutdown.
    """
    stopping = stopping or asyncio.Event()
    backoff = Backoff(
        first_s=backoff_min_s, max_s=backoff_max_s, floor_s=backoff_min_s, stable_s=stable_after_s
    )
    while not stopping.is_set():
        backoff.up()
        try:
            await device.run()
        except DeviceError as exc:
            if stopping.is_set():
                log.debug("%s ended while stopping: %s", device.id, exc)
                return
            _report_failure(device, exc)
        except Exception as exc:  # noqa: BLE001 - logged with its traceback by _report_failure
            _report_failure(device, exc)  # a bug, also while stopping: never hidden
            if stopping.is_set():
                return
        else:
            if stopping.is_set():
                return
            log.error("%s driver returned; restarting it", device.id)
            device.set_condition(DeviceState.OFFLINE)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(backoff.failed()):
                await stopping.wait()


def _report_failure(device: AnyDevice, exc: Exception) -> None:
    """Log why ``device.run()`` failed and publish the condition it leaves the device in."""
    if isinstance(exc, Offline):
        log.warning("%s offline: %s", device.id, exc)
        device.set_condition(DeviceState.OFFLINE)
    elif isinstance(exc, DeviceError):
        log.warning("%s failed: %s", device.id, exc)
        device.set_condition(DeviceState.HARDWARE_ERROR)
    else:
        log.error("%s driver crashed", device.id, exc_info=exc)
        device.set_condition(DeviceState.HARDWARE_ERROR)
