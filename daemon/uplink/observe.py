"""Operational events and per-device counters derived from the daemon's device states and events.

Rules use the class, event and state-detail names of wire API v1 only, so every
driver of a class (simulator or real) produces the same fleet events:

| trigger | fleet event |
|---|---|
| any device enters hardwareError, offline, noDevice or powerOff | ``deviceError`` |
| ... and later comes back online or busy | ``deviceRecovered`` |
| printer detail ``paper`` becomes ``low``/``out``/``jammed`` | ``paperLow``/``paperOut``/``jam`` |
| documentSlot ``evt/jam`` | ``jam`` |
| sensors ``evt/doorOpened`` / ``evt/tamper`` | ``doorOpened`` / ``tamper`` |
| coin/cashAcceptor detail ``unsettled`` grows (an ``unknown`` left) | ``transactionUnknown`` |
| coinAcceptor ``cashBox``, cashAcceptor ``stacker`` (detail) becomes ``full`` | ``cashBoxFull`` |
| coinAcceptor, cashAcceptor ``evt/fraudAttempt`` | ``fraudAttempt`` |
| lockers ``evt/compartmentLeftOpen`` | ``compartmentLeftOpen`` |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from devices.base import HEALTHY, DeviceState, Message
from devices.runtime.clock import now_ms

from .schema import DeviceHealth, EventKind, Facts, facts_of

#: States that count as an error for the per-device counter.
ERROR_STATES = frozenset(
    {
        DeviceState.USER_ERROR,
        DeviceState.HARDWARE_ERROR,
        DeviceState.OFFLINE,
        DeviceState.NO_DEVICE,
        DeviceState.POWER_OFF,
        DeviceState.FRAUD_ATTEMPT,
    },
)
#: States that raise ``deviceError`` (userError has its own, more precise events).
FAULT_STATES = frozenset(
    {DeviceState.HARDWARE_ERROR, DeviceState.OFFLINE, DeviceState.NO_DEVICE, DeviceState.POWER_OFF},
)

#: ``(class, event)`` -> fleet event kind.
EVENT_RULES: Mapping[tuple[str, str], EventKind] = {
    ("documentSlot", "jam"): "jam",
    ("sensors", "doorOpened"): "doorOpened",
    ("sensors", "tamper"): "tamper",
    ("coinAcceptor", "fraudAttempt"): "fraudAttempt",
    ("cashAcceptor", "fraudAttempt"): "fraudAttempt",
    ("lockers", "compartmentLeftOpen"): "compartmentLeftOpen",
}

#: ``(class, detail key, new value)`` -> fleet event kind, raised when the value is newly reached.
DETAIL_RULES: Mapping[tuple[str, str, str], EventKind] = {
    ("printer", "paper", "low"): "paperLow",
    ("printer", "paper", "out"): "paperOut",
    ("printer", "paper", "jammed"): "jam",
    ("coinAcceptor", "cashBox", "full"): "cashBoxFull",
    ("cashAcceptor", "stacker", "full"): "cashBoxFull",
}
#: Classes whose detail ``unsettled`` counts transactions left ``unknown``.
UNSETTLED_CLASSES = frozenset({"coinAcceptor", "cashAcceptor"})


@dataclass(slots=True)
class _Tracked:
    device_class: str
    state: DeviceState = DeviceState.STARTING
    since: int = field(default_factory=now_ms)
    errors: int = 0
    facts: Facts = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """An operational event: its kind, the device, its state before and now, and its facts."""

    kind: EventKind
    device: str
    device_class: str
    state: DeviceState
    previous: DeviceState | None
    facts: Facts


EventSink = Callable[[Occurrence], None]


class DeviceWatch:
    """Follows every device's state and events; reports operational events to ``sink``.

    Args:
        classes: device id -> device class, for every configured device.
        sink: receives each operational event, synchronously on the loop.

    """

    def __init__(self, classes: Mapping[str, str], sink: EventSink) -> None:
        self._devices = {device: _Tracked(cls) for device, cls in classes.items()}
        self._sink = sink

    def device_state(self, device_id: str, state: DeviceState, detail: Message) -> None:
        """A device's state or detail changed (the daemon calls this for every change)."""
        tracked = self._devices.get(device_id)
        if tracked is None:
            return
        previous, old_facts = tracked.state, tracked.facts
        facts = facts_of(detail)
        tracked.facts = facts
        if state is not previous:
            tracked.state, tracked.since = state, now_ms()
            if state in ERROR_STATES and previous not in ERROR_STATES:
                tracked.errors += 1
            if state in FAULT_STATES and previous not in FAULT_STATES:
                self._emit("deviceError", device_id, tracked, previous)
            elif state in HEALTHY and previous in FAULT_STATES:
                self._emit("deviceRecovered", device_id, tracked, previous)
        for key, value in facts.items():
            if old_facts.get(key) == value or not isinstance(value, str):
                continue
            kind = DETAIL_RULES.get((tracked.device_class, key, value))
            if kind is not None:
                self._emit(kind, device_id, tracked, previous)
        unsettled = facts.get("unsettled")
        if (
            tracked.device_class in UNSETTLED_CLASSES
            and isinstance(unsettled, int)
            and unsettled > int(old_facts.get("unsettled", 0))
        ):
            self._emit("transactionUnknown", device_id, tracked, previous)

    def device_event(self, device_id: str, event: str, data: Message) -> None:
        """A device broadcast an event; only the names in :data:`EVENT_RULES` matter."""
        tracked = self._devices.get(device_id)
        if tracked is None:
            return
        kind = EVENT_RULES.get((tracked.device_class, event))
        if kind is not None:
            self._emit(kind, device_id, tracked, tracked.state, facts_of(data))

    def _emit(
        self,
        kind: EventKind,
        device_id: str,
        tracked: _Tracked,
        previous: DeviceState | None,
        extra: Facts | None = None,
    ) -> None:
        self._sink(
            Occurrence(
                kind, device_id, tracked.device_class, tracked.state, previous,
                tracked.facts | (extra or {}),
            ),
        )  # fmt: skip

    def health(self) -> dict[str, DeviceHealth]:
        """Every device's state, since, error count and facts, for a health message."""
        return {
            device_id: DeviceHealth(
                device_class=t.device_class,
                state=t.state.value,
                since=t.since,
                errors=t.errors,
                facts=dict(t.facts),
            )
            for device_id, t in self._devices.items()
        }
