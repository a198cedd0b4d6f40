"""MQTT plumbing shared by the local API, the uplink and the fleet tools: link, codecs."""
