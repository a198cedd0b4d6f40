"""The local MQTT API v1: topics, wire types, routing, request lifecycle, idempotency, AsyncAPI."""
