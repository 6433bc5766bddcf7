"""MQTT ingest: readings devices publish to the broker, stored through telemetry's ingest."""
