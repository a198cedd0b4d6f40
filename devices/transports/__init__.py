"""Transports that drivers share: each holds one kind of blocking or foreign I/O behind a seam."""
