"""The ``kioskd`` command line: one module per command group, named for the command.

``kioskd.py`` is ``kioskd`` itself (run, safe-state, check-config, version) and
mounts the others by module name, imported when used (``lazy.py``; ``kioskd run``
carries none of them): ``ledger.py`` (``kioskd ledger``), ``lockers.py``
(``kioskd lockers``), ``fleet.py`` (``kioskd fleet``), ``update.py``
(``kioskd update``), ``provision.py`` (``kioskd provision``) and ``ui.py``
(``kioskd ui``).  Each group is a ``typer.Typer`` named ``app``.
"""

from .kioskd import app, main

__all__ = ["app", "main"]
