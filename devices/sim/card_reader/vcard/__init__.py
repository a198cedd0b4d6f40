"""The project's own ICAO 9303 virtual card, served to pcscd through vsmartcard's vpcd.

``files`` builds a specimen card's LDS files and an EF.SOD signed by a test
document signer under a test CSCA; ``chip`` answers APDUs as an eMRTD chip with
BAC and secure messaging; ``vpcd`` connects the chip to pcscd's virtual reader;
:mod:`devices.sim.card_reader.pcsc` is the ``pcsc`` wire simulator serving ``sim/``
actions with it.
"""
