"""Payments that are not a device: what the daemon computes for a UI's payment step."""
