"""``python -m bench.footprint``: RSS and idle CPU in production, and what each poller costs.

- **production**: ``kioskd run --config`` with the devices of the built-in sim
  config but their real drivers only (no ``simulator`` key, no mock pin factory,
  the card reader on ``pcsc``), against a standalone mosquitto, on a machine
  without the hardware: every driver tries its device (serial ports, the
  printer's TCP port, pcscd, the camera node, a GPIO pin factory) and retries
  with its backoff.  RSS after the daemon reports ready or degraded and a settle
  time, then its CPU over the idle window.
- **per device**: ``kioskd run --config`` with one device of the sim config (its
  real driver polling its wire simulator as configured) and the embedded broker,
  idle CPU over the window; ``none`` is the daemon with no device.  A device's
  cost is its run minus ``none`` (the wire simulator runs in the daemon's
  process, so its own work is inside the figure, except the coin acceptor's,
  which runs in a process of its own).  Then the same for each production
  device with no hardware: what its driver's retrying costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from tests.uiclient import connect

from . import procs
from .traffic import wait_ready

BOARD = "sim-0001"


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _sim_devices() -> dict[str, dict[str, Any]]:
    text = resources.files("daemon").joinpath("sim.toml").read_text(encoding="utf-8")
    devices: dict[str, dict[str, Any]] = tomllib.loads(text)["devices"]
    return devices


def _config(
    path: Path, state: Path, devices: dict[str, dict[str, Any]], *, mqtt_port: int | None
) -> Path:
    """A config file: board sim-0001, ``state`` for state and runtime, ``devices``.

    ``mqtt_port`` None: the embedded broker (a ``[broker]`` table), else that broker.
    """
    lines = ["[board]", f'id = "{BOARD}"']
    lines += ["[mqtt]", f"port = {mqtt_port}"] if mqtt_port else ["[broker]", "embedded = true"]
    lines += ["[daemon]", f'state_dir = "{state / "state"}"', f'runtime_dir = "{state / "run"}"']
    for dev_id, table in devices.items():
        lines.append(f"[devices.{dev_id}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


#: The real driver of a class the sim config runs on its behavioural simulator.
REAL_DRIVERS = {"cardReader": "pcsc"}


def production_devices() -> dict[str, dict[str, Any]]:
    """The sim config's devices with their real drivers and no simulator.

    A class with no real driver in this tree (only ``sim``) is left out.
    """
    devices: dict[str, dict[str, Any]] = {}
    for dev_id, table in _sim_devices().items():
        real = {k: v for k, v in table.items() if k != "simulator"}
        if real.get("pin_factory") == "mock":
            del real["pin_factory"]  # gpiozero's default factories: no GPIO here
        if real["driver"] == "sim":
            if real["class"] not in REAL_DRIVERS:
                continue
            real["driver"] = REAL_DRIVERS[real["class"]]
        devices[dev_id] = real
    return devices


async def idle(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU of each process over ``seconds`` as % of one core (schedstat, ns resolution)."""
    before = {name: procs.cpu_ns(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    return {
        f"{name}Pct": round((procs.cpu_ns(pid) - before[name]) / 1e9 / elapsed * 100, 3)
        for name, pid in pids.items()
    } | {"seconds": round(elapsed, 2)}


async def _ready_state(port: int) -> str:
    async with connect(port, BOARD, "bench-footprint") as ui:
        state: str = (await wait_ready(ui))["state"]
    return state


async def production(settle_s: float, idle_s: float) -> dict[str, Any]:
    """RSS and idle CPU of the daemon with real drivers and no hardware."""
    with (
        procs.broker() as broker,
        tempfile.TemporaryDirectory(prefix="kioskd-bench-prod-") as tmp,
    ):
        work = Path(tmp)
        config = _config(work / "kioskd.toml", work, production_devices(), mqtt_port=broker.port)
        setup = procs.SimSetup(["run", "--config", str(config)], list(production_devices()))
        async with procs.run_daemon(setup, work, external_port=broker.port) as daemon:
            state = await _ready_state(daemon.port)
            await asyncio.sleep(settle_s)
            rss = round(procs.rss_kib(daemon.pid) / 1024, 1)
            cpu = await idle({"daemon": daemon.pid}, idle_s)
    return {"state": state, "rssMiB": rss, "idleCpu": cpu, "devices": list(production_devices())}


async def per_device(settle_s: float, idle_s: float, *, real: bool) -> dict[str, float]:
    """Idle CPU (% of a core) of the daemon with each device alone, and with none.

    ``real``: the production devices against a standalone broker, no hardware (each
    cost is its driver's retrying); else the sim config's devices, each with its wire
    simulator, and the embedded broker.
    """
    tables = production_devices() if real else _sim_devices()
    out: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(procs.broker()).port if real else None
        for name, chosen in ({"none": {}} | {d: {d: t} for d, t in tables.items()}).items():
            with tempfile.TemporaryDirectory(prefix="kioskd-bench-poll-") as tmp:
                work = Path(tmp)
                config = _config(work / "kioskd.toml", work, chosen, mqtt_port=port)
                setup = procs.SimSetup(["run", "--config", str(config)], list(chosen))
                async with procs.run_daemon(setup, work, external_port=port) as daemon:
                    await _ready_state(daemon.port)
                    await asyncio.sleep(settle_s)
                    out[name] = (await idle({"daemon": daemon.pid}, idle_s))["daemonPct"]
    return out


async def measure(settle_s: float, idle_s: float) -> dict[str, Any]:
    """Production RSS and idle CPU, and each device's idle CPU, with and without hardware."""
    return {
        "production": await production(settle_s, idle_s),
        "pollers": await per_device(settle_s, idle_s, real=False),
        "retries": await per_device(settle_s, idle_s, real=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__)
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    args = parser.parse_args()
    result = asyncio.run(measure(2.0, args.idle))
    prod = result["production"]
    print(
        f"production ({prod['state']}): RSS {prod['rssMiB']:.1f} MiB, idle CPU "
        f"{prod['idleCpu']['daemonPct']:.2f} % over {prod['idleCpu']['seconds']:.0f} s"
    )
    for key, title in (
        ("pollers", "polling its wire simulator"),
        ("retries", "real driver, no hardware (retrying)"),
    ):
        base = result[key]["none"]
        print(f"idle CPU per device, {title} (% of a core; the daemon alone: {base:.2f} %)")
        for name, pct in result[key].items():
            if name != "none":
                print(f"  {name:<14} {pct:6.2f} %  (+{pct - base:.2f})")


if __name__ == "__main__":
    main()
