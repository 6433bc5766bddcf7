"""How the forwarder cuts its outbox into requests: up to a number of chunks or of
readings, whichever comes first, and a chunk larger than the cap on its own."""

from __future__ import annotations

from collections import deque

from services.telemetry import forwarder
from services.telemetry.forwarder import StoredChunk, _next_request


def chunk(position: int, count: int) -> StoredChunk:
    return StoredChunk(position, "s", "d", "o", "generic", "m", 0, 0, b"", count)


def cut(counts: list[int]) -> list[list[int]]:
    """The positions of each request the outbox of chunks with ``counts`` readings makes."""
    outbox = deque(chunk(n, count) for n, count in enumerate(counts))
    requests = []
    while outbox:
        requests.append([c.position for c in _next_request(outbox)])
    return requests


def test_small_chunks_go_up_to_the_chunk_cap() -> None:
    cap = forwarder.CHUNKS_PER_REQUEST
    requests = cut([10] * (cap + 3))
    assert [len(r) for r in requests] == [cap, 3]
    assert [p for r in requests for p in r] == list(range(cap + 3))  # in order, none lost


def test_large_chunks_go_up_to_the_readings_cap_and_a_huge_one_alone() -> None:
    cap = forwarder.READINGS_PER_REQUEST
    assert cut([cap // 2, cap // 2, 1, cap * 3, 5]) == [[0, 1], [2], [3], [4]]
