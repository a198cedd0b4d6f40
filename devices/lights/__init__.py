"""Guide lights beside each device of the kiosk."""
