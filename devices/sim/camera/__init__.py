"""Simulators of the ``camera`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); v4l2 (wire); images, the
synthetic pictures.
"""
