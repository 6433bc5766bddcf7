"""Which analytics replicas there are: each configured address, or every address its name
resolves to.

``iot up`` lists every replica in ``IOT_ANALYTICS_ADDR``. Compose and
Kubernetes give one name instead (a scaled Compose service, a headless
Service), which resolves to an address per replica: each of those becomes a
member of the ring, so streams are spread by hash there too, and the members
follow the name as replicas come and go (the forwarder looks again every
:data:`~services.telemetry.forwarder.DISCOVER_SECONDS`). A name that resolves
to one address stays as written, and one that cannot be resolved right now
keeps the members it had.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

Resolver = Callable[[str], Awaitable[list[str]]]
"""An address to the addresses of the replicas behind it."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(address: str) -> list[str]:
    """``host:port`` as ``ip:port`` of every address ``host`` resolves to, when it resolves
    to more than one; otherwise as it is. Raises OSError when the name does not resolve."""
    if "/" in address:  # a gRPC target with a scheme (dns:///, unix:): left to gRPC
        return [address]
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or not host or _is_ip(host):
        return [address]
    found = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    ips = sorted({str(info[4][0]) for info in found})
    if len(ips) <= 1:
        return [address]
    return [f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip in ips]


async def members(
    configured: Sequence[str], *, resolver: Resolver, previous: dict[str, list[str]]
) -> dict[str, list[str]]:
    """The replicas behind each configured address; ``previous`` answers for a name that
    does not resolve now (a DNS hiccup must not take replicas out of the ring)."""
    found: dict[str, list[str]] = {}
    for address in configured:
        try:
            found[address] = await resolver(address)
        except OSError:
            found[address] = previous.get(address, [address])
    return found
