"""ICAO Doc 9303 eMRTD: access control, secure messaging, LDS parsers, passive authentication.

Pure functions and small classes over bytes; nothing here does I/O, so the
PC/SC driver and the project's virtual card share them and tests check them
against the worked examples of ICAO 9303 part 11.
"""
