"""Transports shared by drivers: serial ports, GPIO pins."""
