"""Chip ID card readers (ICAO 9303 eMRTD, the Vietnamese citizen card)."""
