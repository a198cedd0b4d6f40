"""Child processes the daemon starts for itself (embedded broker, socat pty pairs).

They run in a session of their own, so a Ctrl-C meant for the daemon reaches the
daemon alone, which then stops them in order; and they get SIGKILL when the
daemon dies (PR_SET_PDEATHSIG), even after ``kill -9``, so none is left behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    # SIGKILL: such children hold nothing to save, and some block SIGTERM in phases.
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def owned_child() -> dict[str, Any]:
    """Keyword arguments for ``asyncio.create_subprocess_exec`` giving the above."""
    return {"start_new_session": True, "preexec_fn": _die_with_parent}
