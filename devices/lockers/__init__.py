"""Result-return lockers: compartments with released-by-command locks and door sensors."""
