"""Benchmarks of kioskd: MQTT round trips against the broker floor, start-up, memory, idle CPU.

Run ``./dev bench`` (or ``.venv/bin/python -m bench [--quick]``); docs/performance.md
explains the figures.
"""
