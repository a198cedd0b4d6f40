"""Modules that dependencies import at start but the daemon never uses, loaded when first used.

- paho-mqtt's client imports :mod:`urllib.request` for one thing: reading
  ``mqtt_proxy`` from the environment, which it does only when PySocks is
  installed (kioskd does not depend on it).  ``urllib.request`` brings
  :mod:`http.client` and the :mod:`email` package with it: ~1.3 MiB of code
  objects in every process that speaks MQTT.
- gpiozero imports ``importlib_resources`` (installed for python-escpos,
  which gpiozero then prefers to :mod:`importlib.resources`) for the fonts of
  its seven-segment displays only.

:func:`defer` puts a placeholder module in ``sys.modules`` that the import
statement accepts as is.  Reading any attribute of it imports the real module,
which replaces it in ``sys.modules`` and in its parent package, and answers
from there; a module that bound the placeholder to a name keeps reaching the
real module through it.  Code that uses the module gets the same module,
imported later (docs/performance.md, "Memory").
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

#: What :func:`defer` defers by default.
UNUSED_BY_THE_DAEMON = ("urllib.request", "importlib_resources")


class DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module not yet imported; any attribute imports it."""

    def __getattr__(self, attribute: str) -> Any:
        """The real module's ``attribute``, importing it on the first call."""
        return getattr(self._real(), attribute)

    def _real(self) -> types.ModuleType:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        # The import lock serialises two threads that get here at once; the
        # import binds the real module as its parent package's attribute.
        return importlib.import_module(name)


def defer(names: tuple[str, ...] = UNUSED_BY_THE_DAEMON) -> None:
    """Defer importing each of ``names`` (not yet imported) until an attribute is read.

    Call it before the first import of the dependency that imports them (the
    ``daemon`` package does on import, before any of its modules imports
    paho-mqtt).  A name already imported is left alone.

    Raises:
        ModuleNotFoundError: no module ``name`` exists.

    """
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"no module named {name!r}", name=name)
        placeholder = DeferredModule(name)
        placeholder.__spec__ = spec
        parent, _, child = name.rpartition(".")
        sys.modules[name] = placeholder
        if parent:
            setattr(importlib.import_module(parent), child, placeholder)
