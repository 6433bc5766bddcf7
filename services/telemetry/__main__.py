"""Entry point of the telemetry process: ``python -m services.telemetry``."""

from iotkit.process import run
from services.telemetry.settings import TelemetrySettings
from services.telemetry.wiring import build

if __name__ == "__main__":
    run("telemetry", build, TelemetrySettings)
