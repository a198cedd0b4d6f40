"""Simulators of the ``coinAcceptor`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); cctalk and pulse (wire);
cctalk_device, the emulated ccTalk acceptor.
"""
