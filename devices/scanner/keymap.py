"""The US keyboard layout a keyboard-wedge scanner types in: key codes <-> characters.

A wedge scanner turns each character of a code into key presses of the
layout it is programmed for (US by default).  Only what that layout can type
survives: Vietnamese letters such as ``ồ`` or ``ễ`` have no key, so a wedge
scanner drops or mangles them.  Codes are Linux input key codes (``KEY_*``).
"""

from __future__ import annotations

from evdev import ecodes

#: Key code -> (character, character with Shift).
US_KEYS: dict[int, tuple[str, str]] = {
    ecodes.KEY_SPACE: (" ", " "),
    ecodes.KEY_TAB: ("\t", "\t"),
    ecodes.KEY_GRAVE: ("`", "~"),
    ecodes.KEY_MINUS: ("-", "_"),
    ecodes.KEY_EQUAL: ("=", "+"),
    ecodes.KEY_LEFTBRACE: ("[", "{"),
    ecodes.KEY_RIGHTBRACE: ("]", "}"),
    ecodes.KEY_BACKSLASH: ("\\", "|"),
    ecodes.KEY_SEMICOLON: (";", ":"),
    ecodes.KEY_APOSTROPHE: ("'", '"'),
    ecodes.KEY_COMMA: (",", "<"),
    ecodes.KEY_DOT: (".", ">"),
    ecodes.KEY_SLASH: ("/", "?"),
    ecodes.KEY_KPSLASH: ("/", "/"),
    ecodes.KEY_KPASTERISK: ("*", "*"),
    ecodes.KEY_KPMINUS: ("-", "-"),
    ecodes.KEY_KPPLUS: ("+", "+"),
    ecodes.KEY_KPDOT: (".", "."),
}
US_KEYS.update(
    {getattr(ecodes, f"KEY_{d}"): (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)}
)
US_KEYS.update({getattr(ecodes, f"KEY_KP{d}"): (d, d) for d in "0123456789"})
US_KEYS.update({getattr(ecodes, f"KEY_{c}"): (c.lower(), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})

SHIFT_KEYS = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT})
ENTER_KEYS = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER})

#: Character -> (key code, needs Shift): how a wedge scanner types it (main block first).
TYPING: dict[str, tuple[int, bool]] = {}
for _code, (_plain, _shifted) in sorted(US_KEYS.items(), reverse=True):
    TYPING[_plain] = (_code, False)
    if _shifted != _plain:
        TYPING[_shifted] = (_code, True)


def key_char(code: int, shift: bool) -> str | None:
    """The character key ``code`` types, or None for a key that types none."""
    pair = US_KEYS.get(code)
    if pair is None:
        return None
    return pair[1] if shift else pair[0]
