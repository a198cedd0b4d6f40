"""Processes under measurement: a standalone mosquitto, the daemon, and /proc readers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from daemon.broker import broker_config, free_port
from devices.registry import resolve
from tests.processes import stop

REPO = Path(__file__).resolve().parent.parent
ANNOUNCE = re.compile(r"mqtt://127\.0\.0\.1:(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- /proc -----------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_ns(pid: int) -> int:
    """On-CPU time of a process's live threads in ns (``/proc/PID/task/*/schedstat``).

    Finer than :func:`cpu_seconds` (whose ticks are 10 ms, i.e. 0.1 % of a core over
    10 s); a thread that exits takes its time with it, so use it over idle windows.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text(encoding="ascii").split()[0])
        except (OSError, ValueError):
            continue  # the thread exited meanwhile
    return total


def children(pid: int) -> list[tuple[int, str]]:
    """Direct children of ``pid`` as ``(pid, comm)``."""
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found.append((int(entry.name), comm))
    return found


# -- a standalone broker -----------------------------------------------------------


@dataclass
class Broker:
    """A mosquitto with the project's embedded-broker config on a free loopback port."""

    port: int
    proc: subprocess.Popen[bytes]
    ws_port: int | None = None


@contextlib.contextmanager
def broker(*, websockets: bool = False) -> Iterator[Broker]:
    """Run mosquitto (``set_tcp_nodelay true``) from a temp dir for the duration.

    ``websockets``: also its websockets listener on a free port, bound to ``lo``.
    """
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-broker-") as tmp:
        port = free_port()
        ws_port = free_port() if websockets else None
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(broker_config(port, ws_port), encoding="utf-8")
        with (Path(tmp) / "mosquitto.log").open("wb") as log:
            # stderr to a file: mosquitto warns about running as root, which is noise here.
            proc = subprocess.Popen(
                ["mosquitto", "-c", str(conf)], stdin=subprocess.DEVNULL, stderr=log
            )
        try:
            _wait_port(port, proc)
            if ws_port is not None:
                _wait_port(ws_port, proc)
            yield Broker(port, proc, ws_port)
        finally:
            stop(proc, 5)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    import socket  # noqa: PLC0415

    until = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with status {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > until:
            raise RuntimeError(f"mosquitto did not listen on {port} within {timeout} s")
        time.sleep(0.01)


# -- the daemon ----------------------------------------------------------------------


@dataclass
class SimSetup:
    """How to start the daemon with every simulator that exists in this tree."""

    args: list[str]
    devices: list[str]
    missing: list[str] = field(default_factory=list)


def sim_setup(tmp: Path) -> SimSetup:
    """``run --sim`` when every driver of the built-in sim config imports.

    Otherwise (drivers still being written) the same config without the
    missing devices, through ``--config``, still with the embedded broker.
    """
    text = resources.files("daemon").joinpath("sim.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    devices: dict[str, dict[str, str]] = data.get("devices", {})
    present: list[str] = []
    missing: list[str] = []
    for dev_id, table in devices.items():
        try:
            resolve(table["class"], table["driver"])
        except ImportError:
            missing.append(dev_id)
        else:
            present.append(dev_id)
    if not missing:
        return SimSetup(["run", "--sim"], present)
    lines = [
        "[board]",
        f'id = "{data["board"]["id"]}"',
        "[broker]",
        "embedded = true",
        "[daemon]",
        f'state_dir = "{tmp / "state"}"',
        f'runtime_dir = "{tmp / "run"}"',
    ]
    for dev_id in present:
        lines += [f"[devices.{dev_id}]", *(f'{k} = "{v}"' for k, v in devices[dev_id].items())]
    path = tmp / "kioskd-bench.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return SimSetup(["run", "--config", str(path)], present, missing)


@dataclass
class Daemon:
    """A running daemon subprocess and its embedded broker."""

    proc: asyncio.subprocess.Process
    port: int
    started: float  # perf_counter() just before the process was created
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def broker_pid(self) -> int | None:
        """The embedded mosquitto (a child of the daemon)."""
        return next((pid for pid, comm in children(self.pid) if comm == "mosquitto"), None)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(
                self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            )
        return ""


@contextlib.asynccontextmanager
async def run_daemon(
    setup: SimSetup, xdg_state: Path, start_timeout: float = 15.0, external_port: int | None = None
) -> AsyncIterator[Daemon]:
    """Start ``python -m daemon`` with the embedded broker; SIGTERM it on exit.

    ``external_port``: the config names a broker of its own on that port (nothing
    is announced on stdout then).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env |= {"XDG_STATE_HOME": str(xdg_state), "PYTHONUNBUFFERED": "1"}
    log_path = xdg_state / f"daemon-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon",
            *setup.args,
            "--mqtt-port",
            str(free_port()),
            "--ws-port",
            "0",
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    running = None if external_port is None else Daemon(proc, external_port, started, log_path)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(start_timeout):
            while running is None:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"daemon exited ({await proc.wait()}):\n{_tail(log_path)}")
                match = ANNOUNCE.search(line)
                if match:
                    running = Daemon(proc, int(match.group(1)), started, log_path)
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def mosquitto_version() -> str:
    exe = shutil.which("mosquitto")
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False, timeout=10)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].removeprefix("mosquitto version ").strip() if first else "unknown"
