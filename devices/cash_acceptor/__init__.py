"""The ``cashAcceptor`` device class: banknote validators with escrow, and their drivers."""
