"""Entry point of the devices process: ``python -m services.devices``."""

from iotkit.process import run
from services.devices.wiring import build

if __name__ == "__main__":
    run("devices", build)
