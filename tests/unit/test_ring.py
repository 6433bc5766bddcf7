"""The ring that gives each stream its analytics replica: balanced, the same in every
process, and moving as few streams as can move when a replica leaves or joins."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from services.telemetry.ring import owner

STREAMS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"stream/{k}")) for k in range(6000)]
REPLICAS = ["127.0.0.1:50054", "127.0.0.1:50064", "127.0.0.1:50074"]


def owners(replicas: list[str]) -> dict[str, str]:
    return {stream: owner(stream, replicas) for stream in STREAMS}


def test_streams_spread_evenly_over_the_replicas() -> None:
    counts = Counter(owners(REPLICAS).values())
    assert set(counts) == set(REPLICAS)
    for count in counts.values():
        assert abs(count - len(STREAMS) / 3) < 0.05 * len(STREAMS)


def test_every_process_picks_the_same_owner_whatever_the_order() -> None:
    assert owners(REPLICAS) == owners(list(reversed(REPLICAS)))


def test_when_a_replica_leaves_only_its_streams_move_and_they_spread_over_the_rest() -> None:
    before = owners(REPLICAS)
    gone = REPLICAS[1]
    after = owners([r for r in REPLICAS if r != gone])
    moved = [s for s in STREAMS if before[s] != after[s]]
    assert moved == [s for s in STREAMS if before[s] == gone]
    spread = Counter(after[s] for s in moved)
    assert set(spread) == {REPLICAS[0], REPLICAS[2]}
    assert min(spread.values()) > 0.4 * len(moved)


def test_when_a_replica_joins_it_takes_about_its_share_and_nothing_else_moves() -> None:
    before = owners(REPLICAS)
    joined = "127.0.0.1:50084"
    after = owners([*REPLICAS, joined])
    moved = [s for s in STREAMS if before[s] != after[s]]
    assert all(after[s] == joined for s in moved)
    assert abs(len(moved) - len(STREAMS) / 4) < 0.05 * len(STREAMS)


def test_no_replica_owns_nothing() -> None:
    with pytest.raises(ValueError, match="no replica"):
        owner(STREAMS[0], [])
