"""Wire simulators: the far end of a real driver's transport.

A behavioural simulator replaces a driver; a wire simulator keeps the real driver
and replaces the hardware behind it: a pty pair speaking the device's serial
protocol, an ESC/POS printer on a loopback TCP port, a virtual card on vpcd,
MockFactory pins driven by simulated physics.  Config names one with
``simulator = "<name>"`` beside ``driver``; the daemon then

1. creates it and passes the driver's settings through :meth:`driver_settings`,
   which points them at where the simulator serves;
2. starts it (:meth:`start`) before the driver runs;
3. routes ``kiosk/v1/{b}/sim/{device}/{action}`` to it, so the same sim actions
   as the class's behavioural simulator drive the real driver's code paths;
4. closes it (:meth:`aclose`) after the driver is closed.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import msgspec

from devices.base import DeviceEnv, DeviceHost, Message, SimActions


class WireSimulator(SimActions, abc.ABC):
    """Base of every wire simulator.

    Subclasses set the class variables, declare the same sim actions as the
    behavioural simulator of their class (the contract's ``Simulators`` section)
    with :func:`devices.base.sim_action`, and report what the physical world
    would see with ``host.sim_output``.
    """

    device_class: ClassVar[str]
    #: What the simulator publishes on ``sim/{d}/out/{what}``, by ``what``.
    sim_outputs: ClassVar[Mapping[str, type[Message]]] = {}

    def __init__(self, device_id: str, host: DeviceHost, env: DeviceEnv) -> None:
        self.device_id = device_id
        self.host = host
        self.env = env

    @abc.abstractmethod
    def driver_settings(self, settings: msgspec.Struct) -> msgspec.Struct:
        """The driver's settings pointed at this simulator (a pty link, a port, ...).

        Called once, before :meth:`start`; must not block.
        """

    @abc.abstractmethod
    async def start(self) -> None:
        """Start serving; returns once the driver can connect.

        Raises:
            OSError: the transport could not be created.

        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop serving and release the transport; idempotent."""
