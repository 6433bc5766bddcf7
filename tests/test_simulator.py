"""``iot simulate`` against real auth, devices and telemetry services, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import numpy as np
import pytest

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotsuite import cli
from services.telemetry.telemetry import writer
from tests import leak_scan
from tests.conftest import Backend, Suite, start_suite
from tests.support import bearer
from tools.simulate import Options, SimulatorError, Summary, simulate

PASSWORD = "Sim-ulat0r!pass"
leak_scan.register(leak_scan.PASSWORD, PASSWORD)


@pytest.fixture
async def suite(backend: Backend) -> AsyncIterator[Suite]:
    running = await start_suite(backend, ("auth", "devices", "telemetry"))
    yield running
    await running.aclose()


def options(**changes: object) -> Options:
    base = Options(
        devices=3,
        rate_hz=50.0,
        seconds=2.0,
        batch_ms=100,
        email=f"sim-{uuid.uuid4().hex[:8]}@example.com",
        password=PASSWORD,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def access_token(suite: Suite, email: str) -> list[tuple[str, str]]:
    async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
        login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(email=email, password=PASSWORD)
        )
    return bearer(login.access_token)


async def stream_data(
    suite: Suite, who: list[tuple[str, str]], stream_id: str
) -> telemetry_pb2.SensorDataResponse:
    async with grpc.aio.insecure_channel(suite.address("telemetry")) as channel:
        return await telemetry_pb2_grpc.TelemetryServiceStub(channel).GetStreamData(
            telemetry_pb2.GetStreamDataRequest(stream_id=stream_id, max_points=10_000),
            metadata=who,
        )


def longest_flat_run(values: list[float]) -> int:
    """The most consecutive equal values."""
    best = run = 1
    for previous, value in itertools.pairwise(values):
        run = run + 1 if value == previous else 1
        best = max(best, run)
    return best


async def test_simulated_devices_stream_into_the_suite(suite: Suite, backend: Backend) -> None:
    chosen = options()
    out = io.StringIO()
    summary = await simulate(suite.settings, chosen, out=out)

    assert summary.accepted > 0
    assert (summary.rejected, summary.duplicates, summary.dropped, summary.unacked) == (0, 0, 0, 0)
    assert [d.name for d in summary.devices] == ["sim-0001", "sim-0002", "sim-0003"]
    assert [d.device_type for d in summary.devices] == ["temperature", "pressure", "motion"]
    assert not any(d.error for d in summary.devices)
    text = out.getvalue()
    assert "readings/s" in text and "accepted" in text
    who = await access_token(suite, chosen.email)
    for run in summary.devices:
        assert run.stream_id and run.stream_id in text  # the summary names every stream
        stored = await backend.sql(
            "telemetry",
            "SELECT readings_count, (SELECT sum(count) FROM chunks WHERE stream_id = ?) "
            "FROM streams WHERE id = ?",
            (run.stream_id, run.stream_id),
        )
        assert stored == [(run.accepted, run.accepted)]
        # About two seconds at 50 Hz, less what was due after the last batch.
        assert 60 <= run.accepted <= 110

    # The first device is the stuck sensor: one value, repeated, for the middle of the run.
    stuck = summary.devices[0]
    (label,) = [a for a in stuck.anomalies if a.kind == "stuck"]
    data = await stream_data(suite, who, stuck.stream_id)
    stamps = np.array([p.timestamp.ToMicroseconds() for p in data.data])
    values = [p.value for p in data.data]
    inside = [v for t, v in zip(stamps, values, strict=True) if label.start_us <= t < label.end_us]
    assert len(inside) >= 40 and set(inside) == {label.magnitude}
    assert longest_flat_run(values) >= 40
    assert data.stats.count == stuck.accepted


async def test_a_second_run_reuses_the_devices_and_streams(suite: Suite) -> None:
    chosen = options(devices=2, seconds=1.0, anomalies=False)
    first = await simulate(suite.settings, chosen, out=io.StringIO())
    second = await simulate(suite.settings, chosen, out=io.StringIO())
    assert [d.device_id for d in first.devices] == [d.device_id for d in second.devices]
    assert [d.stream_id for d in first.devices] == [d.stream_id for d in second.devices]
    assert not any(d.anomalies for d in first.devices)
    who = await access_token(suite, chosen.email)
    data = await stream_data(suite, who, first.devices[0].stream_id)
    assert data.stats.count == first.devices[0].accepted + second.devices[0].accepted


async def test_stopping_ends_cleanly_with_a_summary(suite: Suite) -> None:
    stop = asyncio.Event()
    out = io.StringIO()
    running = asyncio.create_task(
        simulate(suite.settings, options(devices=1, seconds=0.0), out=out, stop=stop)
    )
    await asyncio.sleep(1.5)
    stop.set()
    summary: Summary = await asyncio.wait_for(running, 15)
    assert summary.interrupted and summary.accepted > 0 and summary.unacked == 0
    assert "interrupted after" in out.getvalue()


async def test_a_wrong_password_for_an_existing_account_is_explained(suite: Suite) -> None:
    chosen = options(devices=1, seconds=0.5)
    await simulate(suite.settings, chosen, out=io.StringIO())
    with pytest.raises(SimulatorError, match="password is wrong"):
        await simulate(
            suite.settings, options(email=chosen.email, password="Other!pass1"), out=io.StringIO()
        )


async def test_without_an_account_one_is_made_and_its_credentials_printed_once(
    suite: Suite,
) -> None:
    out, err = io.StringIO(), io.StringIO()
    chosen = options(devices=1, seconds=0.5, email=None, password=None)
    summary = await simulate(suite.settings, chosen, out=out, err=err)
    assert summary.accepted > 0
    printed = err.getvalue()
    found = re.search(r"created the account (\S+) with the password (\S+)\n", printed)
    assert found, printed
    email, password = found.groups()
    assert printed.count(password) == 2  # the account line and how to run again with it
    assert "sign in" in printed and f"--email {email} --password '{password}'" in printed
    assert password not in out.getvalue()
    async with grpc.aio.insecure_channel(suite.address("auth")) as channel:
        login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(email=email, password=password)
        )
    assert login.access_token and login.user.email == email
    # A second account each time: nothing is shared with a known password.
    again = io.StringIO()
    await simulate(suite.settings, chosen, out=io.StringIO(), err=again)
    assert email not in again.getvalue() and password not in again.getvalue()


def test_the_cli_takes_the_simulator_options() -> None:
    args = cli.build_parser().parse_args(
        ["simulate", "--devices", "100", "--rate", "1000", "--seconds", "30", "--batch-ms", "50"]
    )
    assert (args.devices, args.rate, args.seconds, args.batch_ms) == (100, 1000.0, 30.0, 50)
    assert args.email is None and not args.no_anomalies
    assert cli.main(["simulate", "--devices", "0"]) == 2


async def test_small_batches_are_merged_into_few_chunks(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 50 Hz in 100 ms batches: five readings a batch, twenty batches a device. Telemetry
    # merges only chunks analytics has acknowledged, so analytics runs too.
    monkeypatch.setattr(writer, "COMPACT_AFTER", 4)
    suite = await start_suite(backend, ("auth", "devices", "telemetry", "analytics"))
    try:
        await check_merged(suite, backend)
    finally:
        await suite.aclose()


async def check_merged(suite: Suite, backend: Backend) -> None:
    chosen = options()
    summary = await simulate(suite.settings, chosen, out=io.StringIO())
    who = await access_token(suite, chosen.email)
    for run in summary.devices:
        ((chunks, readings),) = await backend.sql(
            "telemetry",
            "SELECT count(*), sum(count) FROM chunks WHERE stream_id = ?",
            (run.stream_id,),
        )
        assert readings == run.accepted
        assert isinstance(chunks, int) and chunks <= 8  # rather than one per batch
        data = await stream_data(suite, who, run.stream_id)
        stamps = [p.timestamp.ToMicroseconds() for p in data.data]
        assert data.stats.count == run.accepted and stamps == sorted(set(stamps))


async def test_a_telemetry_restart_loses_no_acknowledged_reading(
    suite: Suite, backend: Backend
) -> None:
    from services.telemetry.wiring import build

    stop = asyncio.Event()
    chosen = options(devices=2, seconds=0.0, anomalies=False)
    running = asyncio.create_task(simulate(suite.settings, chosen, out=io.StringIO(), stop=stop))
    await asyncio.sleep(1.5)
    await suite.stop("telemetry")  # mid-stream, without letting calls finish
    await asyncio.sleep(0.5)
    restarted = await build(
        suite.settings, address=suite.address("telemetry"), schema=backend.schema("telemetry")
    )
    await restarted.built.start()
    suite.processes["telemetry"] = restarted
    await asyncio.sleep(2.5)
    stop.set()
    summary = await asyncio.wait_for(running, 20)

    assert sum(d.reconnects for d in summary.devices) >= 1
    assert summary.unacked == 0 and not any(d.error for d in summary.devices)
    who = await access_token(suite, chosen.email)
    for run in summary.devices:
        # A batch stored but whose acknowledgement died with the old process is sent again
        # and acknowledged as duplicates then (``accepted`` counts new readings only). So
        # every accepted reading is stored, once, and nothing is stored that was never
        # acknowledged at all: accepted <= stored <= accepted + duplicates.
        ((count, in_chunks),) = await backend.sql(
            "telemetry",
            "SELECT readings_count, (SELECT sum(count) FROM chunks WHERE stream_id = ?) "
            "FROM streams WHERE id = ?",
            (run.stream_id, run.stream_id),
        )
        assert count == in_chunks
        assert run.accepted <= count <= run.accepted + run.duplicates
        data = await stream_data(suite, who, run.stream_id)
        stamps = [p.timestamp.ToMicroseconds() for p in data.data]
        assert len(set(stamps)) == len(stamps) == count and run.accepted >= 150


async def test_simulated_devices_publish_over_mqtt(backend: Backend, mosquitto_url: str) -> None:
    suite = await start_suite(backend, ("auth", "devices", "telemetry"), mqtt_url=mosquitto_url)
    try:
        out = io.StringIO()
        summary = await simulate(suite.settings, options(protocol="mqtt"), out=out)
        assert "MQTT broker mqtt://127.0.0.1:" in out.getvalue()
        assert not any(d.error for d in summary.devices)
        assert summary.accepted > 0
        assert (summary.rejected, summary.duplicates, summary.unacked) == (0, 0, 0)
        for run in summary.devices:
            stored = await backend.sql(
                "telemetry", "SELECT readings_count FROM streams WHERE id = ?", (run.stream_id,)
            )
            assert stored == [(run.accepted,)] and run.accepted > 0
    finally:
        await suite.aclose()
