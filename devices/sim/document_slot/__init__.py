"""Simulators of the ``documentSlot`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); gpio (wire).
"""
