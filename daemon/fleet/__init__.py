"""The fleet operator's side: live monitor and Prometheus exporter over the fleet broker."""
