"""The coin chaos test's daemon: ``kioskd run`` that dies right after its Nth ledger commit.

``python -m tests.chaosdaemon N run --config FILE`` is ``python -m daemon run
--config FILE`` with the crash point of :mod:`tests.coinchaos` injected into the
deposit service (:attr:`~devices.cash.deposit.DepositService.after_commit`): the
process exits like ``kill -9`` (status 137) right after the Nth credit's commit
of this run, before anything about it is published.  Production never sets it.
"""

from __future__ import annotations

import os
import sys

from daemon.cli import main
from devices.cash.deposit import DepositService
from devices.cash.ledger import CreditRecord

#: The exit status of a process killed by SIGKILL, which the harness counts as such.
KILLED = 137


class ExitAfterCommits:
    """A commit hook that ends the process, without any cleanup, at the Nth commit."""

    def __init__(self, commits: int) -> None:
        self.left = commits

    def __call__(self, _record: CreditRecord) -> None:
        """Count a commit; exit at the Nth."""
        self.left -= 1
        if self.left <= 0:
            os._exit(KILLED)


if __name__ == "__main__":
    DepositService.after_commit = ExitAfterCommits(int(sys.argv.pop(1)))
    main()
