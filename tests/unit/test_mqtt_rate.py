"""The MQTT per-device rate limit: one count across telemetry replicas in a real Redis, a
count per process without it, and the process's own count while Redis cannot be reached."""

from __future__ import annotations

import uuid

from services.telemetry.mqtt.rate import DeviceRates

# One message per 50-second window: the test never lasts a window, whatever the machine.
RATE = 0.02
UNREACHABLE = "redis://127.0.0.1:1/0"


async def test_replicas_share_one_count_in_redis(redis_url: str) -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    replicas = [DeviceRates(RATE, redis_url=redis_url, namespace=namespace) for _ in range(2)]
    try:
        assert all(r.shared for r in replicas)
        assert (replicas[0].per_window, replicas[0].window) == (1, 50.0)
        device, other = str(uuid.uuid4()), str(uuid.uuid4())
        assert await replicas[0].take(device)
        # The second replica sees the first one's message: the device is over its rate.
        assert not await replicas[1].take(device)
        assert not await replicas[0].take(device)
        assert await replicas[1].take(other)  # another device has a count of its own
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_without_redis_each_replica_counts_alone() -> None:
    replicas = [DeviceRates(RATE, redis_url=None) for _ in range(2)]
    device = str(uuid.uuid4())
    assert not replicas[0].shared
    assert await replicas[0].take(device)
    assert await replicas[1].take(device)  # what a shared count is there to prevent
    assert not await replicas[0].take(device)


async def test_an_unreachable_redis_falls_back_to_the_process_count() -> None:
    rates = DeviceRates(RATE, redis_url=UNREACHABLE)
    device = str(uuid.uuid4())
    try:
        assert await rates.take(device)
        assert not await rates.take(device)
    finally:
        await rates.aclose()
