"""Cabinet door and tamper sensors."""
