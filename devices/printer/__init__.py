"""Receipt printers: slip templates, rendering and the printer device class."""
