"""Entry point of the auth process: ``python -m services.auth``."""

from iotkit.process import run
from services.auth.settings import AuthSettings
from services.auth.wiring import build

if __name__ == "__main__":
    run("auth", build, AuthSettings)
