"""Coin acceptors: the deposit class and its durable SQLite ledger."""
