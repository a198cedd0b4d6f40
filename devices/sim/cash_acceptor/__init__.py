"""Simulators of the ``cashAcceptor`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); ssp and cctalk (wire);
ssp_device and cctalk_device, the emulated validators, and note_validator, what both
share.
"""
