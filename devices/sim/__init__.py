"""Simulator twins of every device class, with fault injection."""
