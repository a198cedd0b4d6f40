"""Board facts for health messages: uptime, CPU, load, memory, disk, SoC temperature, throttling.

Everything comes from ``/proc`` and ``/sys``; on a Raspberry Pi the throttling
flags come from the firmware's sysfs file or, when that is absent, from
``vcgencmd get_throttled`` (2 s timeout).  :meth:`SystemProbe.sample` does
blocking file reads: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .schema import SystemHealth

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
#: Raspberry Pi 4/5 kernels expose the firmware's throttling word here.
THROTTLED_SYSFS = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
VCGENCMD_TIMEOUT_S = 2.0

#: Bits of the Raspberry Pi firmware's ``get_throttled`` word.
THROTTLE_BITS = {
    0: "underVoltage",
    1: "freqCapped",
    2: "throttled",
    3: "softTempLimit",
    16: "underVoltageOccurred",
    17: "freqCappedOccurred",
    18: "throttledOccurred",
    19: "softTempLimitOccurred",
}


def throttle_flags(word: int) -> list[str]:
    """Names of the flags set in a ``get_throttled`` word."""
    return [name for bit, name in THROTTLE_BITS.items() if word >> bit & 1]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    text = _read(Path("/proc/stat"))
    if text is None:
        return None
    fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    idle = sum(fields[3:5])  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _meminfo() -> tuple[int, int]:
    """(total, available) bytes."""
    values: dict[str, int] = {}
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def _rss() -> int:
    text = _read(Path("/proc/self/statm"))
    return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE") if text else 0


def _throttled() -> list[str] | None:
    text = _read(THROTTLED_SYSFS)
    if text is not None:
        return throttle_flags(int(text, 16))
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [exe, "get_throttled"],
            capture_output=True,
            text=True,
            timeout=VCGENCMD_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    _, _, value = out.strip().partition("=")
    try:
        return throttle_flags(int(value, 16))
    except ValueError:
        return None


class SystemProbe:
    """Samples the board; CPU percentages are over the time since the previous sample.

    Args:
        disk_path: the file system whose free space matters (the state directory).

    """

    def __init__(self, disk_path: Path) -> None:
        self._disk_path = disk_path
        self._cpu = _cpu_times()
        self._proc = (time.process_time(), time.monotonic())

    def sample(self) -> SystemHealth:
        """Read every fact now (blocking: tens of microseconds, vcgencmd up to 2 s)."""
        cpu = _cpu_times()
        cpu_percent = None
        if cpu is not None and self._cpu is not None and cpu[1] > self._cpu[1]:
            cpu_percent = 100.0 * (cpu[0] - self._cpu[0]) / (cpu[1] - self._cpu[1])
        self._cpu = cpu
        proc = (time.process_time(), time.monotonic())
        elapsed = proc[1] - self._proc[1]
        daemon_cpu = 100.0 * (proc[0] - self._proc[0]) / elapsed if elapsed > 0 else None
        self._proc = proc
        uptime = _read(Path("/proc/uptime"))
        load1, load5, load15 = os.getloadavg()
        mem_total, mem_available = _meminfo()
        try:
            disk = shutil.disk_usage(self._disk_path)
            disk_free, disk_total = disk.free, disk.total
        except OSError:
            disk_free = disk_total = 0
        temp = _read(THERMAL_ZONE)
        return SystemHealth(
            uptime_s=float(uptime.split()[0]) if uptime else 0.0,
            cpu_percent=None if cpu_percent is None else round(cpu_percent, 1),
            daemon_cpu_percent=None if daemon_cpu is None else round(daemon_cpu, 2),
            load1=round(load1, 2),
            load5=round(load5, 2),
            load15=round(load15, 2),
            mem_total=mem_total,
            mem_available=mem_available,
            daemon_rss=_rss(),
            disk_free=disk_free,
            disk_total=disk_total,
            soc_temp_c=int(temp) / 1000 if temp and temp.lstrip("-").isdigit() else None,
            throttled=_throttled(),
        )
