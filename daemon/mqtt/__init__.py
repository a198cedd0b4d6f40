"""The local MQTT API v1: topics, codec, wire messages, link and request lifecycle."""
