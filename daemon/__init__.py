"""kioskd: the device daemon of a self-service administrative kiosk."""

__version__ = "0.1.0"
