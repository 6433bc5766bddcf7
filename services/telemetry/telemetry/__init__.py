"""``iot.telemetry.v1.TelemetryService`` (protos/iot/telemetry/v1/telemetry.proto): streams, ingest
and range queries.
"""
