"""Transports shared by drivers: the gpiozero bridge, I2C I/O expanders, pin claims."""
