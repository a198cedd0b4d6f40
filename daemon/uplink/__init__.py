"""The fleet uplink: a second MQTT client with mutual TLS, health telemetry and a SQLite outbox."""
