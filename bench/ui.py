"""``python -m bench.ui``: the reference UI's latency through a real browser.

Runs ``kioskd run --sim`` with the UI (as ``./dev sim`` does) and headless
Chromium, and measures with timestamps taken inside the page:

- tap -> device command -> screen: a tap on "Nhận kết quả" until the page shows
  that the scanner ``read`` it sent was acknowledged (``main[data-scanner]``);
  the tap also cancels the idle screen's read and switches two guide lights;
- tap -> command -> screen, alone: a tap on the technician page's "paper full"
  button until the action's completion is on the page;
- device -> screen: a sim action (the cabinet door sensor) until the technician
  page's state cell shows the new retained state (browser and test clocks are
  both the machine's wall clock, ms resolution);
- a picture: tap "Chụp ảnh" until the photo is on screen (MQTT over websockets
  with a 40-60 KB JPEG).

Writes bench/results/ui.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

from daemon.broker import free_port
from hil.simrig import sim_rig
from tests.ui.citizen import CARD_QR
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.uiclient import UiClient, connect

from .stats import Stats

RESULTS = Path(__file__).resolve().parent / "results"

# Page-side probe: time of the last tap and of the first change of a watched thing after it.
_PROBE = """() => {
  window.__probe = { tap: 0, seen: 0 };
  document.addEventListener('pointerdown', () => { window.__probe.tap = performance.now(); window.__probe.seen = 0; }, true);
  new MutationObserver(() => {
    const main = document.querySelector('main');
    if (main?.dataset.scanner === 'reading' && window.__probe.tap && !window.__probe.seen) window.__probe.seen = performance.now();
  }).observe(document.querySelector('main'), { attributes: true, attributeFilter: ['data-scanner'] });
}"""


async def _screen(page: Page, name: str, timeout: float = 15.0) -> None:
    await page.wait_for_selector(f"main[data-screen='{name}']", timeout=timeout * 1000)


async def tap_to_screen(page: Page, count: int) -> list[float]:
    """Tap "collect results", wait for the acknowledged scanner read on screen, go back; seconds."""
    samples: list[float] = []
    await page.evaluate(_PROBE)
    for _ in range(count):
        await page.wait_for_selector("main[data-screen='idle'][data-scanner='reading']")
        await page.click("#start-collect")
        await page.wait_for_selector("main[data-screen='collect-scan'][data-scanner='reading']")
        probe = await page.evaluate("() => window.__probe")
        samples.append((probe["seen"] - probe["tap"]) / 1000)
        await page.click("#back")
        await _screen(page, "idle")
    return samples


_TECH_PROBE = """() => {
  window.__probe = { tap: 0, seen: 0 };
  document.addEventListener('pointerdown', () => { window.__probe.tap = performance.now(); window.__probe.seen = 0; }, true);
  new MutationObserver(() => { if (window.__probe.tap && !window.__probe.seen) window.__probe.seen = performance.now(); })
    .observe(document.querySelector('#sim-result'), { childList: true, characterData: true, subtree: true });
}"""


async def tech_tap(page: Page, count: int) -> list[float]:
    """Tap the technician page's "paper full" button until its completion shows; seconds."""
    await page.evaluate(_TECH_PROBE)
    samples: list[float] = []
    for _ in range(count):
        await page.evaluate("() => { document.querySelector('#sim-result').textContent = ''; }")
        await page.evaluate("() => { window.__probe.tap = 0; window.__probe.seen = 0; }")
        await page.click("#sim-printer button:has-text('paper full')")
        await page.wait_for_selector("#sim-result:has-text('printer/paper')")
        probe = await page.evaluate("() => window.__probe")
        samples.append((probe["seen"] - probe["tap"]) / 1000)
        await asyncio.sleep(0.05)
    return samples


async def device_to_screen(page: Page, world: UiClient, count: int) -> list[float]:
    """Open or shut the cabinet door (sim), wait for the technician page's state cell; seconds."""
    samples: list[float] = []
    for i in range(count):
        door = "open" if i % 2 == 0 else "closed"
        sent = time.time()
        await world.send(f"{world.root}/sim/sensors/door", {"open": door == "open"})
        await page.wait_for_selector(f'#dev-sensors code:has-text(\'"door":"{door}"\')')
        shown = await page.evaluate("() => Date.now()")
        samples.append(max(0.0, shown / 1000 - sent))
    return samples


async def picture(page: Page, world: UiClient, count: int) -> list[float]:
    """Tap "take picture" (face) until the photo is on screen, then "take again"; seconds."""
    await page.click("#start-submit")
    await _screen(page, "choose")
    await page.click("#proc-certified-copy")
    await page.wait_for_selector("main[data-screen='identify-key'][data-scanner='reading']")
    await world.sim("scanner", "scan", {"text": CARD_QR})
    await page.click("#expiry-yes")
    await _screen(page, "identify-card")
    await world.sim("cardReader", "presentCard")
    await _screen(page, "identify-ok")
    await page.click("#hello-ok")
    samples: list[float] = []
    for _ in range(count):
        await _screen(page, "capture-face")
        start = time.perf_counter()
        await page.click("#take")
        await page.wait_for_selector("main[data-screen='capture-face-check'] img.photo")
        samples.append(time.perf_counter() - start)
        await page.click("#retake")
    return samples


async def run(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kioskd-bench-ui-") as tmp:
        workdir = Path(tmp)
        extra = ["--ws-port", str(free_port()), "--ui-port", str(free_port())]
        with sim_rig(workdir, extra_args=extra) as sim:
            out = (workdir / "kioskd.stdout").read_text(encoding="utf-8")
            found = re.search(r"kiosk UI:\s+(http://\S+/)", out)
            assert found, out
            url = found[1]
            async with (
                connect(sim.port, sim.board, "bench-world") as world,
                async_playwright() as p,
            ):
                await asyncio.sleep(1.0)  # the daemon reports ready within a second
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                kiosk = await browser.new_page(viewport={"width": 1280, "height": 800})
                await kiosk.goto(url)
                await _screen(kiosk, "idle")
                tech = await browser.new_page(viewport={"width": 1400, "height": 900})
                await tech.goto(url + "tech.html")
                await tech.wait_for_selector("#dev-sensors")
                taps = await tap_to_screen(kiosk, count)
                techs = await tech_tap(tech, count)
                states = await device_to_screen(tech, world, count * 2)
                pictures = await picture(kiosk, world, max(3, count // 10))
                await browser.close()
    return {
        "samples": {
            "tapToScreen": taps,
            "techTap": techs,
            "deviceToScreen": states,
            "picture": pictures,
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__)
    parser.add_argument(
        "--count", type=int, default=30, help="taps measured (states: twice as many)"
    )
    args = parser.parse_args()
    raw = asyncio.run(run(args.count))
    summary = {name: _stats(values) for name, values in raw["samples"].items()}
    labels = {
        "tapToScreen": "tap -> scanner read acked -> screen",
        "techTap": "tap -> sim action completion -> screen",
        "deviceToScreen": "sim cabinet door -> technician page state",
        "picture": "tap -> takePicture (face, 720 px) -> photo shown",
    }
    print("reference UI latency through headless Chromium (ms)")
    for name, stats in summary.items():
        print(
            f"  {labels[name]:<48} n={stats['n']:<4} p50={stats['p50']:>8.1f} p99={stats['p99']:>8.1f} max={stats['max']:>8.1f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "ui.json"
    out.write_text(
        json.dumps({"summary": summary, "samples": raw["samples"]}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"  JSON: {out}")


def _stats(seconds: list[float]) -> dict[str, float]:
    s = Stats.of(seconds)
    return {"n": s.n, "p50": s.p50, "p99": s.p99, "max": s.max, "mean": s.mean}


if __name__ == "__main__":
    main()
