"""Telemetry's background work: activity reports, following decommissions, retention.

Each job is a loop with a period that stops when cancelled; failures are
logged and retried on the next round, never fatal to the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from grpc import aio

from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.convert import micros_timestamp
from iotkit.outages import log_failed_round
from iotkit.service_tokens import ServiceTokenSource
from iotkit.sqltypes import utcnow
from iotkit.tasks import cancel
from services.telemetry.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

CALL_DEADLINE = 5.0
EVENTS_CURSOR = "devices.events"


class Periodic:
    """Runs ``work`` every ``period`` seconds in the background."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        period: float,
        *,
        run_at_stop: bool = True,
    ) -> None:
        """``run_at_stop``: run the work once more when stopped (for work that would
        otherwise be lost; not for upkeep that can wait for the next start)."""
        self._name = name
        self._work = work
        self._period = period
        self._run_at_stop = run_at_stop
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        """Stop the loop, then run the work once more so nothing pending is lost."""
        await cancel(self._task)
        self._task = None
        if self._run_at_stop:
            with contextlib.suppress(Exception):
                await self._work()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                await self._work()
            except Exception as exc:  # the next round retries
                log_failed_round(log, "background job failed", exc, job=self._name)


class ActivityReporter:
    """Adds up what was stored per device and reports it to the devices service."""

    def __init__(self, *, channel: aio.Channel, tokens: ServiceTokenSource) -> None:
        self._stub = devices_pb2_grpc.DeviceServiceStub(channel)
        self._tokens = tokens
        self._pending: dict[str, tuple[int, int]] = {}

    def add(self, device_id: str, newest_us: int, readings: int) -> None:
        """Count readings stored for a device (cheap; called on the ingest path)."""
        newest, count = self._pending.get(device_id, (0, 0))
        self._pending[device_id] = (max(newest, newest_us), count + readings)

    async def flush(self) -> None:
        """Report and clear the counts; what fails to report is kept for the next round."""
        pending, self._pending = self._pending, {}
        metadata = await self._tokens.metadata() if pending else []
        for device_id, (newest_us, readings) in pending.items():
            seen = micros_timestamp(newest_us)
            try:
                await self._stub.RecordDeviceActivity(
                    devices_pb2.RecordDeviceActivityRequest(
                        device_id=device_id, last_seen_at=seen, readings=readings
                    ),
                    metadata=metadata,
                    timeout=CALL_DEADLINE,
                )
            except Exception:
                self.add(device_id, newest_us, readings)
                raise


class DevicePurger(Protocol):
    """What purges a decommissioned device's data (the stream service)."""

    async def purge_device(self, *, device_id: str) -> int:
        """Delete the device's data; raises when the purge is to be retried."""
        ...


class DecommissionFollower:
    """Follows the devices event log and has the data of decommissioned devices purged.

    The position is stored in telemetry's own database after each purge, so a
    restart resumes where it stopped and nothing is purged twice or skipped.
    """

    def __init__(
        self,
        *,
        channel: aio.Channel,
        tokens: ServiceTokenSource,
        store: TelemetryStore,
        purger: DevicePurger,
    ) -> None:
        self._stub = devices_pb2_grpc.DeviceServiceStub(channel)
        self._tokens = tokens
        self._store = store
        self._purger = purger

    async def poll(self) -> int:
        """Handle every new event; answers how many devices were purged."""
        purged = 0
        position = await self._store.cursor(name=EVENTS_CURSOR)
        while True:
            answer = await self._stub.ListDeviceEvents(
                devices_pb2.ListDeviceEventsRequest(after_sequence=position, limit=500),
                metadata=await self._tokens.metadata(),
                timeout=CALL_DEADLINE,
            )
            for event in answer.events:
                if event.kind == "decommissioned":
                    await self._purger.purge_device(device_id=event.device_id)
                    purged += 1
                position = event.sequence
                await self._store.save_cursor(name=EVENTS_CURSOR, position=position)
            if len(answer.events) < 500:
                return purged


async def enforce_retention(store: TelemetryStore, *, now: datetime | None = None) -> int:
    """Drop chunks older than each stream's retention; answers how many chunks went
    one by one (on PostgreSQL, whole months whose every stream allows it go first, as
    tables: see ``partitions``)."""
    moment = (now or utcnow()).astimezone(UTC)
    await store.partitions.drop_expired(now=moment)
    dropped = 0
    for stream in await store.streams_with_retention():
        horizon = int((moment.timestamp() - stream.retention_days * 86_400) * 1_000_000)
        dropped += await store.drop_chunks_before(stream_id=stream.id, before=horizon)
    return dropped
