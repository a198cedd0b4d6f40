"""Transports drivers share: serial ports (pyserial-asyncio-fast), and more to come."""
