"""Telemetry's settings: the shared ones plus the file-import limits (``IOT_*`` variables)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import model_validator

from iotkit.config import ConfigError, EmptyIsUnset, Settings


class TelemetrySettings(Settings):
    """The telemetry process's settings; see the configuration table in the README."""

    # File import (seed 002): open batches per user, and how long a batch stays open.
    max_active_batches: Annotated[int, EmptyIsUnset] = 5
    batch_max_age_hours: Annotated[float, EmptyIsUnset] = 24.0
    # Streams (metrics) one device may have; a further new metric is rejected.
    max_streams_per_device: Annotated[int, EmptyIsUnset] = 100
    # MQTT ingest (README "Devices over MQTT"): messages a second one device may publish,
    # and the largest message taken (the broker started by iot up refuses above 4 MiB).
    mqtt_device_rate: Annotated[float, EmptyIsUnset] = 50.0
    mqtt_max_message_bytes: Annotated[int, EmptyIsUnset] = 1024 * 1024

    @model_validator(mode="after")
    def _check_import_limits(self) -> Self:
        if self.max_active_batches < 1:
            raise ConfigError("IOT_MAX_ACTIVE_BATCHES must be at least 1")
        if self.batch_max_age_hours <= 0:
            raise ConfigError("IOT_BATCH_MAX_AGE_HOURS must be above 0")
        if self.max_streams_per_device < 1:
            raise ConfigError("IOT_MAX_STREAMS_PER_DEVICE must be at least 1")
        if self.mqtt_device_rate <= 0:
            raise ConfigError("IOT_MQTT_DEVICE_RATE must be above 0")
        if self.mqtt_max_message_bytes < 1024:
            raise ConfigError("IOT_MQTT_MAX_MESSAGE_BYTES must be at least 1024")
        return self
