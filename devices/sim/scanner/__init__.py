"""Simulators of the ``scanner`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); serial, hid and hidpos
(wire) and wire, what those three share.
"""
