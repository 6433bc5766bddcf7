"""Entry point of the analytics process: ``python -m services.analytics``."""

from iotkit.process import run
from services.analytics.settings import AnalyticsSettings
from services.analytics.wiring import build

if __name__ == "__main__":
    run("analytics", build, AnalyticsSettings)
