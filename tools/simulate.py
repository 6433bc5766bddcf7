"""The device simulator behind ``iot simulate``.

It logs in (registering the account on first use; without ``--email`` a new
account with a generated address and password, both printed to stderr at
start since nothing else knows them), registers or reuses
devices named ``sim-0001``, ``sim-0002``... (types round-robin temperature,
pressure, motion), issues each its own credential, and streams each device's
signal (:mod:`tools.signals`) over its own ``StreamReadings`` call with its
own device token, the way a fleet of real devices would.

Each device samples on a regular grid at the given rate with timestamps of
now, and sends what it has every ``--batch-ms``. Batches are pipelined: up
to ``max_in_flight`` are sent before their acks come back, and a reader task
takes the acks concurrently. When telemetry falls behind, the window fills
and the device stops sending; readings older than ``MAX_BACKLOG_SECONDS``
are then dropped (and counted), as a device with a bounded buffer would,
so memory stays bounded whatever the rates. When the connection fails the
device reconnects and sends its unacknowledged batches again: telemetry's
de-duplication makes that safe, and the duplicates show in the totals.

A live line (rate, totals, unacked) is printed about once a second, and a
summary with the stream ids at the end; Ctrl-C stops cleanly with the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import signal
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import telemetry_pb2, telemetry_pb2_grpc
from iotkit.config import Settings
from iotkit.mqtt import BrokerAddress, Message, MqttClient, acks_topic, parse_url, readings_topic
from iotkit.server import channel
from tools.signals import DEVICE_TYPES, MODELS, NO_ANOMALIES, Anomaly, Scheduled, SignalSource

NAME_FORMAT = "sim-{:04d}"
MAX_IN_FLIGHT = 8
"""Batches per device sent and not yet acknowledged."""
MAX_BACKLOG_SECONDS = 10.0
"""Readings a device keeps while it cannot send; older ones are dropped."""
MAX_BATCH_READINGS = 50_000
"""Most readings in one batch (telemetry takes at most 100,000)."""
CALL_DEADLINE = 10.0
DRAIN_SECONDS = 10.0
"""How long to wait for the last acks after stopping."""
STUCK_EVERY_SECONDS = 600.0
"""When running without an end, the stuck sensor sticks once per this period."""


class SimulatorError(Exception):
    """The simulator cannot start: the message says why."""


@dataclass(frozen=True, slots=True)
class Options:
    """What to simulate (the options of ``iot simulate``)."""

    devices: int = 3
    rate_hz: float = 10.0
    seconds: float = 10.0  # 0 runs until Ctrl-C
    batch_ms: int = 100
    email: str | None = None  # None: a new account with a generated address
    password: str | None = None  # None: generated (and printed at start)
    seed: int = 1
    anomalies: bool = True
    max_in_flight: int = MAX_IN_FLIGHT
    # "grpc" (a StreamReadings call per device) or "mqtt" (the broker of broker_of(settings)).
    protocol: str = "grpc"


@dataclass
class DeviceRun:
    """One simulated device and what happened to its readings."""

    name: str
    device_id: str
    device_type: str
    metric: str
    stream_id: str = ""
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    dropped: int = 0
    reconnects: int = 0
    error: str = ""
    rejections: Counter[str] = field(default_factory=Counter)
    anomalies: list[Anomaly] = field(default_factory=list)
    # Sequence number -> (batch, readings) of batches sent and not yet acknowledged.
    unacked: OrderedDict[int, tuple[telemetry_pb2.ReadingBatch, int]] = field(
        default_factory=OrderedDict
    )
    # Sequence number -> when it was first sent (monotonic seconds), while unacknowledged.
    sent_at: dict[int, float] = field(default_factory=dict)
    # Batches acknowledged, by the whole milliseconds (rounded up) from first send to ack:
    # a histogram, so that a run without an end keeps bounded memory.
    ack_ms: Counter[int] = field(default_factory=Counter)

    @property
    def unacked_readings(self) -> int:
        """Readings sent and not yet acknowledged."""
        return sum(count for _, count in self.unacked.values())


@dataclass
class Summary:
    """The outcome of a simulation."""

    devices: list[DeviceRun]
    seconds: float
    interrupted: bool = False

    @property
    def accepted(self) -> int:
        """New readings telemetry acknowledged as stored (duplicates excluded)."""
        return sum(d.accepted for d in self.devices)

    @property
    def rejected(self) -> int:
        """Readings telemetry refused."""
        return sum(d.rejected for d in self.devices)

    @property
    def sent(self) -> int:
        """Readings the devices sent (a batch sent again after a reconnect counts once)."""
        return sum(d.sent for d in self.devices)

    @property
    def duplicates(self) -> int:
        """Readings already stored (batches sent again after a reconnect); not in ``accepted``."""
        return sum(d.duplicates for d in self.devices)

    @property
    def dropped(self) -> int:
        """Readings the devices dropped because telemetry could not take them in time."""
        return sum(d.dropped for d in self.devices)

    @property
    def unacked(self) -> int:
        """Readings still unacknowledged at the end."""
        return sum(d.unacked_readings for d in self.devices)


def broker_of(settings: Settings) -> BrokerAddress:
    """The MQTT broker devices publish to: IOT_MQTT_URL's host and port (not its
    administrator), or the one ``iot up`` starts on 127.0.0.1:IOT_MQTT_PORT."""
    if settings.mqtt_url:
        named = parse_url(settings.mqtt_url)
        return BrokerAddress(named.host, named.port)
    return BrokerAddress("127.0.0.1", settings.mqtt_port)


def _now_us() -> int:
    return time.time_ns() // 1000


def account_for(options: Options) -> tuple[str, str, bool]:
    """The email and password to stream as, and whether either was generated.

    A generated password is random rather than a default written in the source,
    which anyone could use to sign in to the account of any installation.
    """
    email = (
        options.email if options.email is not None else f"sim-{secrets.token_hex(4)}@example.com"
    )
    # Prefix and suffix give the classes the password rules ask for; the middle is
    # base64url, whose characters the rules all allow.
    password = (
        options.password if options.password is not None else f"Sim-{secrets.token_urlsafe(12)}1"
    )
    return email, password, options.email is None or options.password is None


def credentials_text(email: str, password: str, settings: Settings) -> str:
    """Where a generated account's credentials are printed once, and how to use them."""
    gateway = f"http://{settings.gateway_host}:{settings.gateway_port}"
    return (
        f"iot simulate: created the account {email} with the password {password}\n"
        f"iot simulate: sign in with them in the console at {gateway}/ (or POST "
        f"{gateway}/v1/auth/login); run again with --email {email} --password '{password}' "
        "to reuse its devices"
    )


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def log_in(auth: auth_pb2_grpc.AuthServiceStub, email: str, password: str) -> str:
    """An access token for the account, registering it first when it does not exist."""
    request = auth_pb2.LoginRequest(email=email, password=password)
    try:
        answer = await auth.Login(request, timeout=CALL_DEADLINE)
    except aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        try:
            await auth.Register(
                auth_pb2.RegisterRequest(
                    email=email, password=password, display_name="Device simulator"
                ),
                timeout=CALL_DEADLINE,
            )
        except aio.AioRpcError as taken:
            if taken.code() == grpc.StatusCode.ALREADY_EXISTS:
                raise SimulatorError(f"{email} exists and the password is wrong") from taken
            raise SimulatorError(f"cannot register {email}: {taken.details()}") from taken
        answer = await auth.Login(request, timeout=CALL_DEADLINE)
    if answer.mfa_required:
        raise SimulatorError(f"{email} needs an MFA code; use an account without MFA")
    return answer.access_token


async def ensure_devices(
    devices: devices_pb2_grpc.DeviceServiceStub, token: str, count: int
) -> list[devices_pb2.Device]:
    """The devices ``sim-0001``... of the account, registering the missing ones."""
    existing: dict[str, devices_pb2.Device] = {}
    page = 1
    while True:
        answer = await devices.ListDevices(
            devices_pb2.ListDevicesRequest(page=page, limit=100, search="sim-", sort="name"),
            metadata=_bearer(token),
            timeout=CALL_DEADLINE,
        )
        existing.update((d.name, d) for d in answer.devices)
        if page >= answer.pagination.total_pages:
            break
        page += 1
    limit = asyncio.Semaphore(16)

    async def one(index: int) -> devices_pb2.Device:
        name = NAME_FORMAT.format(index + 1)
        async with limit:
            found = existing.get(name)
            if found is None:
                return await devices.RegisterDevice(
                    devices_pb2.RegisterDeviceRequest(
                        name=name, type=DEVICE_TYPES[index % len(DEVICE_TYPES)]
                    ),
                    metadata=_bearer(token),
                    timeout=CALL_DEADLINE,
                )
            if found.status != "active":  # an inactive device may not stream
                return await devices.UpdateDevice(
                    devices_pb2.UpdateDeviceRequest(device_id=found.device_id, status="active"),
                    metadata=_bearer(token),
                    timeout=CALL_DEADLINE,
                )
            return found

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def issue_credentials(
    devices: devices_pb2_grpc.DeviceServiceStub, token: str, device_ids: list[str]
) -> list[str]:
    """A fresh device token for each device (any earlier one stops working)."""
    limit = asyncio.Semaphore(16)

    async def one(device_id: str) -> str:
        async with limit:
            issued = await devices.IssueDeviceCredential(
                devices_pb2.IssueDeviceCredentialRequest(device_id=device_id, valid_days=30),
                metadata=_bearer(token),
                timeout=CALL_DEADLINE,
            )
            return issued.token

    return list(await asyncio.gather(*(one(d) for d in device_ids)))


def stuck_schedule(start_us: int, seconds: float) -> tuple[Scheduled, ...]:
    """When the stuck sensor sticks: the middle half of a timed run, else a minute in ten."""
    if seconds > 0:
        return (Scheduled("stuck", start_us + int(seconds * 250_000), int(seconds * 500_000)),)
    every = int(STUCK_EVERY_SECONDS * 1e6)
    return tuple(
        Scheduled("stuck", start_us + 60_000_000 + n * every, 60_000_000) for n in range(144)
    )


class _ConnectionLost(Exception):
    """The server ended the stream while batches were still unacknowledged."""


class _Device:
    """Streams one device's signal over its own StreamReadings call."""

    def __init__(
        self,
        run: DeviceRun,
        source: SignalSource,
        *,
        stub: telemetry_pb2_grpc.TelemetryServiceStub | None,
        token: str,
        options: Options,
        stop: asyncio.Event,
        offset: float,
    ) -> None:
        self.run = run
        self._source = source
        self._stub = stub
        self._token = token
        self._options = options
        self._stop = stop
        self._offset = offset  # spreads the devices' sends over the batch interval
        self._sequence = 0
        self._room = asyncio.Event()
        self._acked = False  # the current call got an ack: a failure starts the backoff over
        self._backlog = max(1, int(MAX_BACKLOG_SECONDS * 1e6 / source.period_us))

    async def stream(self) -> None:
        """Send until stopped, reconnecting on failure; then wait for the last acks."""
        backoff = 0.5
        while True:
            assert self._stub is not None  # a gRPC device has its stub
            call = self._stub.StreamReadings(metadata=_bearer(self._token))
            reader = asyncio.create_task(self._read_acks(call))
            try:
                for batch, _ in list(self.run.unacked.values()):  # what the last call lost
                    await call.write(batch)
                await self._send(call, reader)
                await call.done_writing()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), DRAIN_SECONDS)
                return
            except (aio.AioRpcError, _ConnectionLost, asyncio.InvalidStateError) as exc:
                code = exc.code() if isinstance(exc, aio.AioRpcError) else None
                if code in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    self.run.error = f"{code.name}: {exc.details()}"  # type: ignore[union-attr]
                    return
                if self._stop.is_set():
                    return
                self.run.reconnects += 1
                if self._acked:
                    backoff, self._acked = 0.5, False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                reader.cancel()
                call.cancel()
                with contextlib.suppress(BaseException):
                    await reader

    async def _ticks(self) -> AsyncIterator[None]:
        """Each time a batch is due (every batch_ms, from the device's offset), until stopped."""
        loop = asyncio.get_running_loop()
        interval = self._options.batch_ms / 1000
        next_send = loop.time() + self._offset
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_send - loop.time()))
            if self._stop.is_set():
                return
            next_send = max(next_send + interval, loop.time())
            yield

    async def _send(self, call: Any, reader: asyncio.Task[None]) -> None:
        async for _ in self._ticks():
            while len(self.run.unacked) >= self._options.max_in_flight:
                if reader.done():
                    reader.result()  # raises the call's error
                    raise _ConnectionLost("the stream ended early")
                self._room.clear()
                # Wake now and then: a stop must not wait for an ack that may never come.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 1.0)
                if self._stop.is_set():
                    return
            batch = self._next_batch()
            if batch is not None:
                await call.write(batch)

    def _next_batch(self, *, device_id: str | None = None) -> telemetry_pb2.ReadingBatch | None:
        """The readings due now as the next batch, recorded as unacknowledged (None when none
        is due); ``device_id`` is the one the batch names (the device's own by default)."""
        now = _now_us()
        due = self._source.positions_until(now)
        if due > self._backlog:  # telemetry could not keep up: drop the oldest
            self.run.dropped += self._source.take(due - self._backlog).timestamps.size
        block = self._source.take_until(now, limit=MAX_BATCH_READINGS)
        self.run.anomalies.extend(block.anomalies)
        if not block.timestamps.size:
            return None
        self._sequence += 1
        batch = telemetry_pb2.ReadingBatch(
            sequence=self._sequence,
            streams=[
                telemetry_pb2.StreamReadings(
                    device_id=self.run.device_id if device_id is None else device_id,
                    metric_name=self.run.metric,
                    timestamps=block.timestamps.tolist(),
                    values=block.values.tolist(),
                )
            ],
        )
        self.run.unacked[self._sequence] = (batch, int(block.timestamps.size))
        self.run.sent_at[self._sequence] = time.monotonic()
        self.run.sent += int(block.timestamps.size)
        return batch

    async def _read_acks(self, call: Any) -> None:
        try:
            while True:
                ack = await call.read()
                if ack is aio.EOF:
                    if self.run.unacked and not self._stop.is_set():
                        raise _ConnectionLost("the stream ended early")
                    return
                self._record(ack)
        finally:
            self._room.set()  # wake a sender waiting for room, so it sees the end

    def _record(self, ack: telemetry_pb2.BatchAck) -> None:
        """Count an acknowledgement (once per batch, however often it was sent)."""
        self._acked = True
        if self.run.unacked.pop(ack.sequence, None) is None:
            return  # an ack of a batch sent twice, already counted
        sent = self.run.sent_at.pop(ack.sequence, None)
        if sent is not None:
            self.run.ack_ms[math.ceil((time.monotonic() - sent) * 1000)] += 1
        self.run.accepted += ack.accepted
        self.run.rejected += ack.rejected
        self.run.duplicates += ack.duplicates
        for rejection in ack.rejections:
            self.run.rejections[rejection.reason] += rejection.count
        if ack.stream_ids and ack.stream_ids[0]:
            self.run.stream_id = ack.stream_ids[0]
        self._room.set()


class _MqttDevice(_Device):
    """Publishes one device's signal to the MQTT broker (protobuf ReadingBatches, QoS 1)
    with its id and credential, and counts the BatchAcks telemetry answers on its ack topic.

    A batch the broker did not take is sent again on the next round; telemetry's
    de-duplication keeps a batch published twice from doubling."""

    def __init__(
        self,
        run: DeviceRun,
        source: SignalSource,
        *,
        broker: BrokerAddress,
        token: str,
        options: Options,
        stop: asyncio.Event,
        offset: float,
    ) -> None:
        super().__init__(
            run, source, stub=None, token=token, options=options, stop=stop, offset=offset
        )
        self._client = MqttClient(
            broker=broker,
            username=run.device_id,
            password=token,
            subscriptions=(acks_topic(run.device_id),),
            on_message=self._acknowledged,
        )

    async def stream(self) -> None:
        """Publish until stopped; then wait for the last acks."""
        try:
            await self._client.start()
        except ConnectionError as exc:
            self.run.error = f"MQTT: {exc}"
            return
        try:
            async for _ in self._ticks():
                if len(self.run.unacked) >= self._options.max_in_flight:
                    continue  # telemetry is behind: the readings wait (or are dropped)
                batch = self._next_batch(device_id="")  # the topic names the device
                if batch is not None:
                    await self._publish(batch)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DRAIN_SECONDS
            while self.run.unacked and loop.time() < deadline:
                await asyncio.sleep(0.05)
        finally:
            self._client.close()

    async def _publish(self, batch: telemetry_pb2.ReadingBatch) -> None:
        try:
            await self._client.publish(
                readings_topic(self.run.device_id),
                batch.SerializeToString(),
                content_type="application/x-protobuf",
            )
        except ConnectionError as exc:
            if "Not authorized" in str(exc):
                self.run.error = f"MQTT: {exc}"
                self._stop.set()
            self.run.reconnects += 1  # paho reconnects by itself; the ack never comes

    def _acknowledged(self, message: Message) -> None:
        try:
            self._record(telemetry_pb2.BatchAck.FromString(message.payload))
        except DecodeError:
            return


def _number(value: float) -> str:
    return f"{value:,.0f}"


def live_line(summary: Summary, elapsed: float, rate: float) -> str:
    """The one-line progress report printed about once a second."""
    line = (
        f"{elapsed:6.1f}s  {_number(rate):>11} readings/s  accepted {_number(summary.accepted)}"
        f"  rejected {_number(summary.rejected)}  duplicates {_number(summary.duplicates)}"
        f"  unacked {_number(summary.unacked)}"
    )
    if summary.dropped:
        line += f"  dropped {_number(summary.dropped)}"
    reconnects = sum(d.reconnects for d in summary.devices)
    if reconnects:
        line += f"  reconnects {reconnects}"
    return line


def _clock(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, UTC).strftime("%H:%M:%S.%f")[:-3]


def summary_text(summary: Summary, settings: Settings, *, shown: int = 10) -> str:
    """The report printed at the end: totals, each device's stream, the anomalies injected."""
    seconds = max(summary.seconds, 1e-9)
    lines = [
        f"{'interrupted' if summary.interrupted else 'finished'} after {summary.seconds:.1f} s: "
        f"{len(summary.devices)} devices, {_number(summary.accepted)} readings accepted "
        f"({_number(summary.accepted / seconds)} readings/s), {_number(summary.rejected)} "
        f"rejected, {_number(summary.duplicates)} duplicates, {_number(summary.dropped)} dropped, "
        f"{_number(summary.unacked)} unacknowledged",
        "",
        f"{'device':<10} {'type':<12} {'metric':<13} {'stream_id':<37} {'accepted':>12}",
    ]
    for run in summary.devices[:shown]:
        lines.append(
            f"{run.name:<10} {run.device_type:<12} {run.metric:<13} {run.stream_id or '-':<37} "
            f"{_number(run.accepted):>12}" + (f"  error: {run.error}" if run.error else "")
        )
    if len(summary.devices) > shown:
        lines.append(f"... and {len(summary.devices) - shown} more devices")
    rejections: Counter[str] = Counter()
    for run in summary.devices:
        rejections.update(run.rejections)
    if rejections:
        lines.append("rejected: " + ", ".join(f"{r} {n:,}" for r, n in rejections.most_common()))
    injected = [(run.name, a) for run in summary.devices for a in run.anomalies]
    if injected:
        lines += ["", f"anomalies injected: {len(injected)}"]
        for name, anomaly in sorted(injected, key=lambda pair: pair[1].start_us)[:shown]:
            lasting = (anomaly.end_us - anomaly.start_us) / 1e6
            lines.append(
                f"  {name} {anomaly.kind:<5} at {_clock(anomaly.start_us)} UTC "
                f"for {lasting:g} s, {anomaly.magnitude:g}"
            )
    example = next((run.stream_id for run in summary.devices if run.stream_id), None)
    if example:
        gateway = f"http://{settings.gateway_host}:{settings.gateway_port}"
        lines += [
            "",
            "Chart a stream through the gateway (ACCESS: an access token of the account):",
            f"  curl -s '{gateway}/v1/streams/{example}/data?max_points=500' "
            '-H "authorization: Bearer $ACCESS"',
        ]
    return "\n".join(lines)


async def simulate(
    settings: Settings,
    options: Options,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
) -> Summary:
    """Run the simulation until ``options.seconds`` pass or ``stop`` is set; answers the totals.

    The credentials of an account made with a generated email or password go to
    ``err`` (not ``out``, which is often kept as a log), once, when it is registered.

    ``handle_signals`` makes Ctrl-C and SIGTERM stop it cleanly (a second
    Ctrl-C stops without waiting for the last acks).
    """
    if options.devices < 1 or options.rate_hz <= 0 or options.batch_ms < 1:
        raise SimulatorError("devices, rate and batch interval must be positive")
    if options.protocol not in ("grpc", "mqtt"):
        raise SimulatorError("protocol must be grpc or mqtt")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
        stop.set()

    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
            installed.append(signum)
    channels = [channel(settings.address(name)) for name in ("auth", "devices", "telemetry")]
    summary = Summary([], 0.0)
    started = time.monotonic()
    try:
        auth = auth_pb2_grpc.AuthServiceStub(channels[0])
        devices = devices_pb2_grpc.DeviceServiceStub(channels[1])
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channels[2])
        try:
            email, password, generated = account_for(options)
            access = await log_in(auth, email, password)
            if generated:
                # A generated password opens only the account just registered with it.
                print(credentials_text(email, password, settings), file=err, flush=True)
            registered = await ensure_devices(devices, access, options.devices)
            tokens = await issue_credentials(devices, access, [d.device_id for d in registered])
        except aio.AioRpcError as exc:
            raise SimulatorError(
                f"setting up the devices failed: {exc.code().name}: {exc.details()}"
            ) from exc
        if stop.is_set():
            raise asyncio.CancelledError  # Ctrl-C during the set-up
        start_us = _now_us()
        runners = []
        for index, (device, token) in enumerate(zip(registered, tokens, strict=True)):
            model = MODELS.get(device.type, MODELS[DEVICE_TYPES[index % len(DEVICE_TYPES)]])
            run = DeviceRun(device.name, device.device_id, model.device_type, model.metric)
            summary.devices.append(run)
            source = SignalSource(
                model.device_type,
                rate_hz=options.rate_hz,
                start_us=start_us,
                seed=options.seed * 1_000_003 + index,
                rates=None if options.anomalies else NO_ANOMALIES,
                # The first device is the stuck sensor of the demo.
                scheduled=stuck_schedule(start_us, options.seconds)
                if options.anomalies and index == 0
                else (),
            )
            offset = options.batch_ms / 1000 * index / options.devices
            runners.append(
                _MqttDevice(
                    run,
                    source,
                    broker=broker_of(settings),
                    token=token,
                    options=options,
                    stop=stop,
                    offset=offset,
                )
                if options.protocol == "mqtt"
                else _Device(
                    run,
                    source,
                    stub=telemetry,
                    token=token,
                    options=options,
                    stop=stop,
                    offset=offset,
                )
            )
        target = (
            f"MQTT broker {broker_of(settings).display}"
            if options.protocol == "mqtt"
            else settings.address("telemetry")
        )
        print(
            f"streaming {options.devices} devices at {options.rate_hz:g} Hz "
            f"(batches every {options.batch_ms} ms) to {target}"
            + (f" for {options.seconds:g} s" if options.seconds > 0 else "; Ctrl-C stops"),
            file=out,
            flush=True,
        )
        started = time.monotonic()
        tasks = [asyncio.create_task(r.stream(), name=r.run.name) for r in runners]
        reporter = asyncio.create_task(_report(summary, started, stop, out))
        try:
            if options.seconds > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.seconds)
            else:
                await stop.wait()
            summary.interrupted = stop.is_set()  # stopped before its time
            stop.set()
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            summary.interrupted = True
        finally:
            stop.set()
            for pending in (*tasks, reporter):
                pending.cancel()
            await asyncio.gather(*tasks, reporter, return_exceptions=True)
    finally:
        summary.seconds = time.monotonic() - started
        for installed_signal in installed:
            loop.remove_signal_handler(installed_signal)
        for open_channel in channels:
            await open_channel.close()
    if summary.devices:
        if out.isatty():
            print(file=out)
        print(summary_text(summary, settings), file=out, flush=True)
    return summary


async def _report(summary: Summary, started: float, stop: asyncio.Event, out: TextIO) -> None:
    """Print the live line about once a second until stopped."""
    tty = out.isatty()
    last_time, last_accepted = started, 0
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        now = time.monotonic()
        accepted = summary.accepted
        rate = (accepted - last_accepted) / max(now - last_time, 1e-9)
        last_time, last_accepted = now, accepted
        line = live_line(summary, now - started, rate)
        print(("\r" + line.ljust(120)) if tty else line, end="" if tty else "\n", file=out)
        out.flush()


def main(settings: Settings, options: Options) -> int:
    """Run the simulator from the command line; answers the exit status."""
    try:
        summary = asyncio.run(simulate(settings, options, handle_signals=True))
    except SimulatorError as exc:
        print(f"iot simulate: {exc}", file=sys.stderr)
        return 1
    except aio.AioRpcError as exc:
        print(f"iot simulate: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (asyncio.CancelledError, KeyboardInterrupt):
        return 130
    failed = [run for run in summary.devices if run.error]
    return 1 if failed or not summary.accepted else 0
