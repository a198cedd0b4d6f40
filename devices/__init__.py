"""Device classes: one protocol per class, real drivers and simulator twins."""
