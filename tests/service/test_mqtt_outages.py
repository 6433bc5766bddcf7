"""An MQTT message that meets a database outage is stored once the database answers.

The fault run (PostgreSQL stopped for 12 s under ``iot simulate --protocol
mqtt``) refused each message in flight with INGEST_FAILED after five attempts
and logged 85 tracebacks at ERROR in eight seconds: the consumer took the
driver's ``OperationalError`` for a fault of its own, though its docstring
promises a dependency's failure is retried, never acknowledged. Here ingest
meets the driver's own error more times than that (the shared PostgreSQL is
not stopped from tests), on a real Mosquitto.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.telemetry.mqtt import consumer
from services.telemetry.telemetry.ingest import IngestService
from tests.conftest import Backend
from tests.service.outage_support import fail_first
from tests.service.test_mqtt import NOW_S, Env, connected, readings_json, start, stored


@pytest.fixture
async def env(backend: Backend, mosquitto_url: str) -> AsyncIterator[Env]:
    async for running in start(backend, mosquitto_url):
        yield running


async def test_a_message_that_meets_a_database_outage_is_stored_not_refused(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = consumer.FAILED_ATTEMPTS + 2
    calls = fail_first(monkeypatch, IngestService, "ingest", failures)
    monkeypatch.setattr(consumer, "RETRY_DELAYS", (0.01,))
    device = await connected(env)
    try:
        with caplog.at_level(logging.DEBUG, logger=consumer.__name__):
            await device.send(readings_json("temp", [[NOW_S - 3, 1.0], [NOW_S - 2, 2.0]], 5))
            ack = await device.ack()
        assert ack.get("rejections", []) == [], ack
        assert (ack["accepted"], ack["sequence"]) == (2, "5")
        assert calls() == failures + 1
        assert await stored(env, ack["stream_ids"][0]) == 2
        lines = [r for r in caplog.records if r.name == consumer.__name__]
        assert [r for r in lines if r.levelno >= logging.ERROR] == []
        # The first failure and the eleventh are said; the others only at DEBUG.
        warned = [r for r in lines if r.levelno == logging.WARNING and "not stored yet" in r.msg]
        assert len(warned) == 1 + (failures - 1) // consumer.WARN_EVERY
    finally:
        device.client.close()


async def test_a_message_held_back_by_an_outage_is_stored_before_the_next(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault run: about 1 % of the readings were late (stored after newer ones, so not
    learnt from nor sent live) once MQTT messages met an outage, each retried on its own."""
    fail_first(monkeypatch, IngestService, "ingest", 1)
    away_at_first = IngestService.ingest
    order: list[int] = []

    async def in_order(self: IngestService, *args: Any, **kwargs: Any) -> Any:
        result = await away_at_first(self, *args, **kwargs)
        order.append(int(kwargs["entries"][0].timestamps[0]))
        return result

    monkeypatch.setattr(IngestService, "ingest", in_order)
    monkeypatch.setattr(consumer, "RETRY_DELAYS", (0.5,))
    device = await connected(env)
    try:
        await device.send(readings_json("temp", [[NOW_S - 3, 1.0]], 1))
        await device.send(readings_json("temp", [[NOW_S - 2, 2.0]], 2))
        acks = [await device.ack(), await device.ack()]
        assert [a["sequence"] for a in acks] == ["1", "2"]
        assert [a["accepted"] for a in acks] == [1, 1]
        assert order == sorted(order) and len(order) == 2
    finally:
        device.client.close()
