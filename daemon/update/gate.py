"""The health gate an update passes before it is committed (``kioskd update gate``).

Run from the newly installed version against the daemon just restarted, as the
``technician`` broker user, within one deadline (the updater's window):

1. the daemon's retained ``status`` names this version and state ``ready``;
2. it answers ``getStatus`` over the API (a request through broker, router and back);
3. with the uplink enabled, its fleet ``birth`` went out: the daemon records each
   birth the fleet broker acknowledged in ``<runtime_dir>/uplink-birth.json``,
   which must name this version and the status's session.

A broken package fails here (or cannot even start this command), and the
updater rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from daemon import __version__
from daemon.config import Config
from provisioning.selftest import NODELAY, Api, SelfTestError

from .updater import BIRTH_FILE

POLL_S = 0.5
#: Seconds the daemon has to answer the gate's getStatus.
ANSWER_TIMEOUT_S = 10.0


class GateError(Exception):
    """The new daemon is not healthy; the message is the reason reported upstream."""


async def check(config: Config, password: str, window_s: float) -> str:
    """Pass the gate within ``window_s`` seconds; a one-line summary of what passed.

    Raises:
        GateError: a step did not pass in time (the message names it and what was seen).

    """
    seen = ["nothing from the local broker"]
    step = "ready"
    try:
        async with asyncio.timeout(window_s):
            while True:
                try:
                    session = await _ready_and_answering(config, password, seen)
                    break
                except (aiomqtt.MqttError, OSError) as exc:
                    seen[0] = f"broker: {exc}"  # the broker or the daemon is still starting
                await asyncio.sleep(POLL_S)
            if not config.uplink.enabled:
                return f"ready, answering (version {__version__}; no uplink)"
            step = "fleet birth"
            seen[0] = "no birth of this session recorded"
            await _birth(Path(config.daemon.runtime_dir) / BIRTH_FILE, session)
            return f"ready, answering, birth sent (version {__version__})"
    except TimeoutError:
        raise GateError(
            f"{step} not reached within {window_s:.0f} s (last seen: {seen[0]})"
        ) from None
    except SelfTestError as exc:
        raise GateError(str(exc)) from None


async def _ready_and_answering(config: Config, password: str, seen: list[str]) -> str:
    """The session of this version's daemon once it is ready and has answered ``getStatus``.

    ``seen[0]`` is kept up to date with the last status, for the failure's reason.
    """
    async with aiomqtt.Client(
        config.mqtt.host, config.mqtt.port, identifier="technician", username="technician",
        password=password, protocol=aiomqtt.ProtocolVersion.V5, clean_start=True,
        socket_options=[NODELAY], timeout=10,
    ) as client:  # fmt: skip
        api = Api(client, config.board.id, "technician")
        pump = asyncio.create_task(api.pump(), name="gate-pump")
        try:
            await client.subscribe(f"{api.reply_topic}/#", qos=1)
            # Retain as published: a status the restarted daemon publishes after this
            # subscription still counts as the retained one (Api keeps retained messages).
            await client.subscribe(
                api.topics.status, options=SubscribeOptions(qos=1, retainAsPublished=True)
            )
            while True:
                status = api.retained.get(api.topics.status) or {}
                if status:
                    reasons = ", ".join(status.get("reasons") or [])
                    seen[0] = f"status {status.get('state')} of version {status.get('version')}"
                    seen[0] += f" ({reasons})" if reasons else ""
                if status.get("version") == __version__ and status.get("state") == "ready":
                    break
                await asyncio.sleep(POLL_S)
            topic = api.topics.request("technician", "getStatus")
            await api.call("getStatus", topic, {}, timeout=ANSWER_TIMEOUT_S)
            return str(status.get("session"))
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump


async def _birth(path: Path, session: str) -> None:
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            birth = json.loads(await asyncio.to_thread(path.read_bytes))
            if birth.get("version") == __version__ and birth.get("session") == session:
                return
        await asyncio.sleep(POLL_S)
