"""Assembles the chat process: its database and token verification.

Its domain RPCs arrive with their own issue; until then the process serves
health, reflection and diagnostics, and verifies tokens with auth's keys.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from iotkit.config import Settings
from iotkit.process import build_service
from iotkit.server import ServiceProcess


async def build(settings: Settings, *, address: str, schema: str | None = None) -> ServiceProcess:
    """Build the chat server bound to ``address``."""
    return await build_service(
        settings, service="chat", metadata=MetaData(), address=address, schema=schema
    )
