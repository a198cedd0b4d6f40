"""Keeps one device running: start, mark offline on failure, retry with backoff.

One supervisor task per device, so one device's failure never touches the others.
"""

from __future__ import annotations

import asyncio
import logging
import random

from .base import Device, DeviceState
from .errors import DeviceError, Offline

log = logging.getLogger(__name__)


async def supervise(
    device: Device,
    *,
    backoff_min_s: float = 0.2,
    backoff_max_s: float = 2.0,
    stable_after_s: float = 10.0,
) -> None:
    """Run ``device.run()`` forever, restarting it after failures.

    Backoff doubles from ``backoff_min_s`` to ``backoff_max_s`` (seconds, with
    full jitter) and resets once the device stayed up ``stable_after_s``.  The
    default cap keeps "replugged -> online" within about two seconds.
    """
    loop = asyncio.get_running_loop()
    backoff = backoff_min_s
    while True:
        started = loop.time()
        try:
            await device.run()
        except Offline as exc:
            log.warning("%s offline: %s", device.id, exc)
            device.set_condition(DeviceState.OFFLINE)
        except DeviceError as exc:
            log.warning("%s failed: %s", device.id, exc)
            device.set_condition(DeviceState.HARDWARE_ERROR)
        except Exception:
            log.exception("%s driver crashed", device.id)
            device.set_condition(DeviceState.HARDWARE_ERROR)
        else:
            log.error("%s driver returned; restarting it", device.id)
            device.set_condition(DeviceState.OFFLINE)
        if loop.time() - started >= stable_after_s:
            backoff = backoff_min_s
        await asyncio.sleep(random.uniform(backoff_min_s, backoff))  # noqa: S311 - jitter, not crypto
        backoff = min(backoff * 2, backoff_max_s)
