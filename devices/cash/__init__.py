"""Money an acceptor takes (coins today, banknotes next): the deposit service and its ledger.

- :mod:`.acceptor`: the base of every acceptor device class that owns a deposit
  (its deposit commands and events, declared once);
- :mod:`.deposit`: a deposit of money towards an amount due, for any acceptor
  device class (commit before publish, inhibit outside a deposit, crash recovery);
- :mod:`.ledger`: the SQLite file every credit is committed to.
"""
