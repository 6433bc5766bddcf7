"""The telemetry service: sensor streams, readings, upload batches, files and their raw bytes."""
