"""What the simulators share, whatever the class.

Fault injection (``faults``), the wire simulator base (``wire``), emulated devices in
processes of their own (``device_process``), socat ptys (``pty``), FIFOs standing in for
character devices (``fifo``), GPIO pins (``gpio_pins``) and an MCP23017 (``mcp23017``).
"""
