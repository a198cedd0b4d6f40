"""Simulators of the ``sensors`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); gpio (wire).
"""
