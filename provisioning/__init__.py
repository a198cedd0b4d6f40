"""Field technician tools: detection, self-test and installation of a kiosk board."""
