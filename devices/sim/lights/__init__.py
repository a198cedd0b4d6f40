"""Simulators of the ``lights`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); gpio (wire).
"""
