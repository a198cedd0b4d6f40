"""Where the slip templates are and which are installed, without loading the renderer.

The printer's description lists the template names at start; rendering a slip
(``slip.py``: Pillow, fonts, QR codes) is loaded by the first ``printSlip``.
"""

from __future__ import annotations

import re
from importlib import resources

TEMPLATE_PACKAGE = "devices.printer"
TEMPLATE_DIR = "templates"
#: What a template name may be (its file is ``templates/{name}.toml``).
TEMPLATE_NAME = re.compile(r"[a-z][a-zA-Z0-9_-]{0,63}")


def template_names() -> list[str]:
    """Names of the installed templates, sorted."""
    folder = resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_DIR)
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml") and TEMPLATE_NAME.fullmatch(entry.name[:-5])
    )
