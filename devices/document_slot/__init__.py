"""Motorised document slots with a shutter: take in and hand back a citizen's papers."""
