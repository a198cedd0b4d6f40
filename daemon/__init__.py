"""kioskd: the device daemon of a self-service administrative kiosk."""

from . import deferred_import

__version__ = "0.1.0"

# Before any module of the package imports paho-mqtt: see deferred_import.py.
deferred_import.defer()
