"""Simulators of the ``lockers`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); gpio (wire).
"""
