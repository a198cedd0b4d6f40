"""Prometheus metrics of the fleet, rendered at scrape time from a :class:`FleetModel`.

Labels: ``tenant``, ``board`` and, per device, ``device`` and ``class``.  The
HTTP server is prometheus-client's (a thread: the one seam here); it reads a
snapshot of the model taken under a lock, while the event loop ingests.

Several exporters can share the load with an MQTT 5 shared subscription on
health, events and replies (``--share-group``): each sees a part of every
board's messages, so gauges are per instance (aggregate with ``max without
(instance)``) and counters add up (``sum without (instance)``).  Birth and death
are plain subscriptions, seen by every instance, so ``kiosk_up`` is exact
everywhere.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from daemon.fleet_topics import session_filters, telemetry_filters

from .feed import FleetBroker, feed
from .model import Board, FleetModel

log = logging.getLogger(__name__)

BOARD_LABELS = ["tenant", "board"]
DEVICE_LABELS = [*BOARD_LABELS, "device", "class"]

#: (metric suffix, health path, help) of board-level gauges.
_BOARD_GAUGES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("uptime_seconds", ("uptimeS",), "Daemon uptime."),
    ("system_uptime_seconds", ("system", "uptimeS"), "Board uptime."),
    ("cpu_percent", ("system", "cpuPercent"), "CPU use of all cores, percent."),
    (
        "daemon_cpu_percent",
        ("system", "daemonCpuPercent"),
        "CPU use of kioskd, percent of one core.",
    ),
    ("load1", ("system", "load1"), "1-minute load average."),
    ("memory_total_bytes", ("system", "memTotal"), "Memory installed."),
    ("memory_available_bytes", ("system", "memAvailable"), "Memory available."),
    ("daemon_rss_bytes", ("system", "daemonRss"), "kioskd resident set size."),
    ("disk_free_bytes", ("system", "diskFree"), "Free space where kioskd keeps its state."),
    ("soc_temperature_celsius", ("system", "socTempC"), "SoC temperature."),
    ("outbox_messages", ("outbox", "messages"), "Messages waiting in the uplink outbox."),
    ("outbox_bytes", ("outbox", "bytes"), "Bytes held by the uplink outbox."),
    ("cert_days_left", ("certDaysLeft",), "Days until the board's client certificate expires."),
)


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = data
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


class FleetCollector(Collector):
    """Renders the fleet model as metric families (``kiosk_...``, ``kioskd_fleet_...``).

    Args:
        model: the model the event loop fills.
        lock: held by the loop while it ingests and here while the snapshot is taken.

    """

    def __init__(self, model: FleetModel, lock: threading.Lock) -> None:
        self._model = model
        self._lock = lock

    def _snapshot(self) -> tuple[list[Board], dict[str, int]]:
        with self._lock:
            boards = [copy.copy(b) for b in self._model.boards.values()]
            for b in boards:
                b.events = copy.copy(b.events)
            outcomes = {o.value: n for o, n in self._model.outcomes.items()}
        return boards, outcomes

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Every metric family, from a snapshot of the model."""
        boards, outcomes = self._snapshot()
        now = time.time()
        yield from self._sessions(boards, now)
        yield from self._health(boards)
        yield from self._devices(boards)
        yield from self._counters(boards)
        messages = CounterMetricFamily(
            "kioskd_fleet_messages", "Fleet messages by what the exporter did.", labels=["outcome"]
        )
        for outcome, count in sorted(outcomes.items()):
            messages.add_metric([outcome], count)
        yield messages

    @staticmethod
    def _sessions(boards: Iterable[Board], now: float) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "kiosk_up", "1 from a board's birth to its death.", labels=BOARD_LABELS
        )
        silent = GaugeMetricFamily(
            "kiosk_silent", "1 when up but unheard for 3 health intervals.", labels=BOARD_LABELS
        )
        seen = GaugeMetricFamily(
            "kiosk_last_seen_timestamp_seconds", "When a message last arrived.", labels=BOARD_LABELS
        )
        info = GaugeMetricFamily(
            "kiosk_info", "Software version and config hash of the current session.",
            labels=[*BOARD_LABELS, "version", "config_hash"],
        )  # fmt: skip
        update = GaugeMetricFamily(
            "kiosk_update_state", "The last kioskd update: its state and the version asked for.",
            labels=[*BOARD_LABELS, "state", "target"],
        )  # fmt: skip
        for b in boards:
            labels = [b.tenant, b.board]
            if (last := b.update()) is not None:
                update.add_metric(
                    [*labels, str(last.get("state")), str(last.get("target", ""))], 1.0
                )
            up.add_metric(labels, 1.0 if b.up else 0.0)
            silent.add_metric(labels, 1.0 if b.silent(now) else 0.0)
            seen.add_metric(labels, b.last_seen)
            if b.birth is not None:
                version, config_hash = b.birth.get("version"), b.birth.get("configHash")
                info.add_metric([*labels, str(version), str(config_hash)], 1.0)
        yield from (up, silent, seen, info, update)

    @staticmethod
    def _health(boards: Iterable[Board]) -> Iterator[GaugeMetricFamily]:
        families = {
            suffix: GaugeMetricFamily(f"kiosk_{suffix}", text, labels=BOARD_LABELS)
            for suffix, _, text in _BOARD_GAUGES
        }
        ts = GaugeMetricFamily(
            "kiosk_health_timestamp_seconds",
            "When the newest health was created.",
            labels=BOARD_LABELS,
        )
        synced = GaugeMetricFamily(
            "kiosk_clock_synced", "1 when NTP-synchronised.", labels=BOARD_LABELS
        )
        throttled = GaugeMetricFamily(
            "kiosk_throttled",
            "Raspberry Pi throttling flags (1 = set).",
            labels=[*BOARD_LABELS, "flag"],
        )
        for b in boards:
            if b.health is None:
                continue
            labels = [b.tenant, b.board]
            for suffix, path, _ in _BOARD_GAUGES:
                value = _dig(b.health, path)
                if value is not None:
                    families[suffix].add_metric(labels, value)
            ts.add_metric(labels, float(b.health.get("ts", 0)) / 1000)
            synced.add_metric(labels, 1.0 if b.health.get("clockSynced") else 0.0)
            for flag in (b.health.get("system") or {}).get("throttled") or []:
                throttled.add_metric([*labels, str(flag)], 1.0)
        yield from families.values()
        yield from (ts, synced, throttled)

    @staticmethod
    def _devices(boards: Iterable[Board]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = GaugeMetricFamily(
            "kiosk_device_state",
            "1 for the device's current state.",
            labels=[*DEVICE_LABELS, "state"],
        )
        healthy = GaugeMetricFamily(
            "kiosk_device_up", "1 when the device is online or busy.", labels=DEVICE_LABELS
        )
        errors = CounterMetricFamily(
            "kiosk_device_errors",
            "Entries into an error state this daemon run.",
            labels=DEVICE_LABELS,
        )
        fact = GaugeMetricFamily(
            "kiosk_device_fact", "1 for each text fact (paper=low, door=open, ...).",
            labels=[*DEVICE_LABELS, "fact", "value"],
        )  # fmt: skip
        number = GaugeMetricFamily(
            "kiosk_device_fact_value", "Numeric facts (cashBoxCoins, unsettled, tamper, ...).",
            labels=[*DEVICE_LABELS, "fact"],
        )  # fmt: skip
        for b in boards:
            devices = (b.health or {}).get("devices") or {}
            for device, info in sorted(devices.items()):
                labels = [b.tenant, b.board, device, str(info.get("deviceClass"))]
                current = str(info.get("state"))
                state.add_metric([*labels, current], 1.0)
                healthy.add_metric(labels, 1.0 if current in ("online", "busy") else 0.0)
                errors.add_metric(labels, float(info.get("errors", 0)))
                for key, value in sorted((info.get("facts") or {}).items()):
                    if isinstance(value, str):
                        fact.add_metric([*labels, key, value], 1.0)
                    elif isinstance(value, bool | int | float):
                        number.add_metric([*labels, key], float(value))
        yield from (state, healthy, errors, fact, number)

    @staticmethod
    def _counters(boards: Iterable[Board]) -> Iterator[CounterMetricFamily]:
        events = CounterMetricFamily(
            "kiosk_events", "Operational events received (deduplicated).",
            labels=[*BOARD_LABELS, "device", "kind"],
        )  # fmt: skip
        dropped = CounterMetricFamily(
            "kiosk_outbox_dropped", "Messages the board's outbox dropped (bound reached).",
            labels=BOARD_LABELS,
        )  # fmt: skip
        gaps = CounterMetricFamily("kiosk_seq_gaps", "Gaps seen in seq.", labels=BOARD_LABELS)
        dups = CounterMetricFamily(
            "kiosk_duplicates", "Messages dropped as already seen (by msgId).", labels=BOARD_LABELS
        )
        for b in boards:
            labels = [b.tenant, b.board]
            for (device, kind), count in sorted(b.events.items()):
                events.add_metric([*labels, device, kind], float(count))
            drop = _dig(b.health or {}, ("outbox", "dropped"))
            if drop is not None:
                dropped.add_metric(labels, drop)
            gaps.add_metric(labels, float(b.seq_gaps))
            dups.add_metric(labels, float(b.duplicates))
        yield from (events, dropped, gaps, dups)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, all interfaces) -> (host, port).

    Raises:
        ValueError: no port.

    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT (found {listen!r})")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - the operator chose it


async def run_exporter(
    broker: FleetBroker,
    listen: str,
    *,
    tenant: str = "+",
    share_group: str | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve ``/metrics`` on ``listen`` and fill it from the fleet broker until cancelled.

    Raises:
        ValueError: ``listen`` is malformed.
        OSError: the port cannot be bound.
        TransportError: the broker URL or TLS files are unusable.

    """
    model = FleetModel(track_gaps=share_group is None)
    lock = threading.Lock()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(model, lock))
    host, port = parse_listen(listen)
    server, thread = start_http_server(port, host, registry=registry)
    log.info("fleet exporter: metrics on http://%s:%d/metrics", host, port)

    def sink(topic: str, payload: bytes, content_type: str | None) -> None:
        with lock:
            model.ingest(topic, payload, content_type)

    filters = session_filters(tenant) + telemetry_filters(tenant, share_group)
    try:
        await feed(broker, filters, sink, ready)
    finally:
        server.shutdown()
        server.server_close()
        await asyncio.to_thread(thread.join, 5)
