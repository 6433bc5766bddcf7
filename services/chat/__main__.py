"""Entry point of the chat process: ``python -m services.chat``."""

from iotkit.process import run
from services.chat.settings import ChatSettings
from services.chat.wiring import build

if __name__ == "__main__":
    run("chat", build, ChatSettings)
