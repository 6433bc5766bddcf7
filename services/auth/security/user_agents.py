"""A short description of a client from its user agent: "Chrome 120 on Mac OS X".

Parsing uses ua-parser's regexes, compiled on first use (a fraction of a
second), so callers run it in a thread; answers are cached.
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

UNKNOWN = "Unknown device"
MAX_LENGTH = 120


@lru_cache(maxsize=2048)
def device_info(user_agent: str) -> str:
    """Browser (or client) and operating system, as far as the user agent tells."""
    agent = user_agent.strip()
    if not agent:
        return UNKNOWN
    result = parse(agent)
    client = None
    if result.user_agent is not None:
        client = " ".join(p for p in (result.user_agent.family, result.user_agent.major) if p)
    system = None
    if result.os is not None and result.os.family != "Other":
        system = " ".join(p for p in (result.os.family, result.os.major) if p)
    device = None
    if result.device is not None and result.device.family not in ("Other", "Mac", "Spider"):
        device = result.device.family
    if client is None:
        # A library or tool (curl/8.5, python-httpx/0.27): its first product token says it.
        client = agent.split()[0]
    described = client
    if system:
        described += f" on {system}"
    if device and device not in described:
        described += f" ({device})"
    return described[:MAX_LENGTH]
