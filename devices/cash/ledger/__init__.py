"""The ledger: every credit an acceptor took, on disk before anyone hears of it.

One SQLite file per board (``{state_dir}/ledger.sqlite3``), shared by every
acceptor of the board (rows carry the device id) and read by ``kioskd ledger``.

- :mod:`.schema`: the file format (tables, triggers, version, upgrade);
- :mod:`.records`: states, reasons and records as Python values, :class:`LedgerError`;
- :mod:`.store`: :class:`Ledger`, synchronous access for one thread (the CLI);
- :mod:`.export`: the flat rows of ``kioskd ledger export``;
- :mod:`.runner`: :class:`LedgerRunner`, the ledger on a worker thread (the daemon).
"""

from .export import ExportRow
from .records import (
    CashBox,
    Collection,
    Credit,
    CreditRecord,
    DeviceShare,
    EndReason,
    LedgerError,
    LostReason,
    LostRecord,
    TransactionRecord,
    TransactionState,
)
from .runner import LedgerRunner
from .schema import LEDGER_FILE, SCHEMA_VERSION
from .store import Ledger

__all__ = [
    "LEDGER_FILE",
    "SCHEMA_VERSION",
    "CashBox",
    "Collection",
    "Credit",
    "CreditRecord",
    "DeviceShare",
    "EndReason",
    "ExportRow",
    "Ledger",
    "LedgerError",
    "LedgerRunner",
    "LostReason",
    "LostRecord",
    "TransactionRecord",
    "TransactionState",
]
