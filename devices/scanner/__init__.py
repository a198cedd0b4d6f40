"""QR/barcode scanners."""
