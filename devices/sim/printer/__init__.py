"""Simulators of the ``printer`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); escpos (wire) and
escpos_stream, the printer firmware's parser.
"""
