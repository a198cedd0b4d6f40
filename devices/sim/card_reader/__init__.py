"""Simulators of the ``cardReader`` class.

``behaviour`` is the behavioural simulator (driver ``sim``); pcsc (wire: the virtual
chip of vcard/ behind pcscd); specimen_cards, the synthetic people.
"""
