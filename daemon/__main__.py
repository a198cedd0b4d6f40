"""``python -m daemon``."""

from .cli import main

main()
