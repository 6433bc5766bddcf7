"""Which analytics replica analyses a stream: rendezvous (highest random weight) hashing.

Each stream goes to the replica whose hash of (replica, stream) is highest.
That balances streams over the replicas, and moves as few as can move: when a
replica leaves, only its own streams move, each to its own second choice (so
they spread over the others); when one joins, it takes only the streams it now
wins, about one in n. Every telemetry replica that knows the same replicas
picks the same owner, with nothing shared but the addresses.

Correctness never depends on it: analytics checks each stream's analysed
position in the transaction that stores the results, so a stream that two
replicas see at once (while the live set changes) is still analysed once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(replica: str, key: str) -> int:
    """The stable 64-bit weight of ``key`` on ``replica`` (the same in every process)."""
    digest = hashlib.blake2b(f"{replica}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, replicas: Iterable[str]) -> str:
    """The replica that owns ``key`` among ``replicas`` (ties, never seen, by name)."""
    chosen = max(replicas, key=lambda replica: (weight(replica, key), replica), default=None)
    if chosen is None:
        raise ValueError("no replica to own a key")
    return chosen
