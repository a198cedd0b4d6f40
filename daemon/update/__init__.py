"""Updates of kioskd from the fleet's signed repository, behind a health gate (docs/updates.md)."""
