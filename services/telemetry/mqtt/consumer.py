"""The MQTT consumer: readings from the broker, stored through ingest, then acknowledged.

Telemetry holds an MQTT 5 shared subscription (``$share/telemetry/...``), so
that its replicas share the devices' messages, in a persistent session (clean
start off, a session expiry), at QoS 1 with manual acknowledgement: a message
is PUBACKed only once ingest has stored it (de-duplicated on stream and
timestamp, as the gRPC stream is), so a telemetry process killed mid-flow gets
every unacknowledged message again from the broker and stores each once.

Each message's outcome, a ``BatchAck`` (JSON, or protobuf for a protobuf
message), goes to the device's acknowledgement topic. A message refused whole
(malformed, too large, a wrong topic, a device over its rate) is acknowledged
too, with its reason: sending it again would change nothing (the rate is
counted across replicas in Redis when configured: ``mqtt.rate``). A failure of a
dependency (devices or the database away) is retried, never acknowledged,
and holds back the device's later messages: a device's messages are stored in
the order they arrived, as a gRPC stream's batches are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, replace

from google.protobuf import json_format

from iot.system.v1 import system_pb2
from iotkit.checks import DependencyCheck, run_check
from iotkit.errors import Unavailable
from iotkit.mqtt import (
    SHARE_GROUP,
    TELEMETRY_USER,
    TOPIC_PREFIX,
    BrokerAddress,
    Message,
    MqttClient,
    acks_topic,
)
from iotkit.outages import is_passing
from iotkit.service_tokens import ServiceTokenSource
from services.telemetry.mqtt import payload
from services.telemetry.mqtt.rate import DeviceRates
from services.telemetry.telemetry.ingest import BatchResult, IngestService, Rejected
from services.telemetry.telemetry.servicer import ack_message

log = logging.getLogger(__name__)

SUBSCRIPTION = f"$share/{SHARE_GROUP}/{TOPIC_PREFIX}/+/readings"
CONCURRENCY = 64
"""Messages stored at once: ingest's group writer commits concurrent ones together."""
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts when a dependency fails; the last repeats while it is Unavailable."""
FAILED_ATTEMPTS = 5
"""Attempts before a message that fails for an unforeseen reason is refused (INGEST_FAILED)."""
WARN_EVERY = 10
"""A message that keeps meeting an outage says so at its 1st, 11th, 21st... attempt."""
DRAIN_SECONDS = 3.0
QUIET_REFUSALS_SECONDS = 30.0
"""How long the broker's refusals at start are expected (devices is provisioning telemetry's
account) and logged at INFO; a refusal after that is a WARNING."""
"""How long a stopping consumer lets the messages it is storing finish."""
RATE_LIMITED = "RATE_LIMITED"
INGEST_FAILED = "INGEST_FAILED"
WRONG_TOPIC = "WRONG_TOPIC"


@dataclass(frozen=True, slots=True)
class MqttLimits:
    """The consumer's limits (settings IOT_MQTT_DEVICE_RATE and IOT_MQTT_MAX_MESSAGE_BYTES)."""

    # Messages per second one device may publish, on average (twice as many in a burst).
    device_rate: float = 50.0
    max_message_bytes: int = 1024 * 1024


class MqttIngest:
    """Consumes the devices' readings from the broker; see the module's docstring."""

    def __init__(
        self,
        *,
        broker: BrokerAddress,
        password: str,
        limits: MqttLimits,
        client_id: str,
        redis_url: str | None = None,
    ) -> None:
        """``redis_url`` (IOT_REDIS_URL) shares the per-device rate limit with the other
        replicas (``services.telemetry.mqtt.rate``); None counts it in this process."""
        self.broker = broker
        self._password = password
        self._limits = limits
        self._client_id = client_id
        self._rates = DeviceRates(limits.device_rate, redis_url=redis_url)
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        # Per device, the message stored last in arrival order: the next one waits for it.
        self._turns: dict[str, asyncio.Future[None]] = {}
        self._stopping = False
        self._client: MqttClient | None = None
        self._ingest: IngestService | None = None
        self._tokens: ServiceTokenSource | None = None
        self._starting: asyncio.Task[None] | None = None

    def start(self, *, ingest: IngestService, tokens: ServiceTokenSource) -> None:
        """Connect in the background (paho retries on its own) and consume."""
        self._ingest, self._tokens = ingest, tokens
        # The client id names the session: a restarted process takes its session back.
        self._client = MqttClient(
            broker=self.broker,
            client_id=self._client_id,
            username=TELEMETRY_USER,
            password=self._password,
            persistent=True,
            manual_ack=True,
            subscriptions=(SUBSCRIPTION,),
            on_message=self._received,
        )
        self._starting = asyncio.ensure_future(self._connect(self._client))

    async def _connect(self, client: MqttClient) -> None:
        # Devices provisions telemetry's account when it starts: until then we are refused,
        # which on a first start is no reason for alarm.
        started = time.monotonic()
        while not self._stopping:
            try:
                await client.start(timeout=5.0)
                log.info("MQTT ingest on: %s", self.broker.display)
                return
            except ConnectionError as exc:
                expected = time.monotonic() - started < QUIET_REFUSALS_SECONDS
                log.log(
                    logging.INFO if expected else logging.WARNING,
                    "MQTT ingest waiting for the broker: %s",
                    exc,
                )
                client.close()
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop consuming: messages being stored get DRAIN_SECONDS to be stored and
        acknowledged; the others stay unacknowledged with the broker."""
        self._stopping = True
        if self._starting is not None:
            self._starting.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            self._client.close()
        await self._rates.aclose()

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._client is not None and self._client.connected

    def _received(self, message: Message) -> None:
        if self._stopping:
            return  # left unacknowledged: the broker sends it again to the next consumer
        device_id = payload.device_of(message.topic)
        # A device's messages are stored in the order they arrived: one retried through an
        # outage holds back the next, which would otherwise be stored first and make the
        # earlier readings late (counted, but not learnt from nor sent live).
        previous = self._turns.get(device_id) if device_id is not None else None
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if device_id is not None:
            self._turns[device_id] = turn
        task = asyncio.ensure_future(self._handle(message, device_id, previous, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(
        self,
        message: Message,
        device_id: str | None,
        previous: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> None:
        assert self._client is not None
        if device_id is None:
            # The broker's ACL keeps devices off other topics: nobody to answer, nothing to keep.
            log.warning("MQTT message on an unexpected topic refused (%s)", WRONG_TOPIC)
            self._client.ack(message)
            return
        try:
            if previous is not None:
                await asyncio.wait([previous])
            async with self._slots:
                try:
                    answer = await self._answer(device_id, message)
                except Exception:  # a fault of ours: refused, not sent again and again
                    log.exception("MQTT message of device %s could not be read", device_id)
                    refused = payload.Refused(INGEST_FAILED, "the message could not be stored")
                    answer = _encode(_refusal(refused), 0, protobuf=False)
        finally:
            turn.set_result(None)
            if self._turns.get(device_id) is turn:
                del self._turns[device_id]
        if answer is None:
            return  # stopping: the broker sends the message again to the next consumer
        body, content_type = answer
        try:
            await self._client.publish(
                acks_topic(device_id),
                body,
                qos=1,
                content_type=content_type,
                correlation=message.correlation,
                wait=False,
            )
        except ConnectionError:
            log.warning("MQTT acknowledgement to device %s not sent", device_id)
        self._client.ack(message)

    async def _answer(self, device_id: str, message: Message) -> tuple[bytes, str] | None:
        """The acknowledgement to publish, once the message is stored or refused."""
        protobuf = message.content_type.split(";", 1)[0].strip().lower() in payload.PROTOBUF_TYPES
        if not await self._rates.take(device_id):
            refused = payload.Refused(
                RATE_LIMITED,
                f"a device publishes at most {self._limits.device_rate:g} messages a second;"
                " this one was not stored",
            )
            return _encode(_refusal(refused), 0, protobuf=protobuf)
        try:
            parsed = payload.parse(
                device_id=device_id,
                payload=message.payload,
                content_type=message.content_type,
                max_bytes=self._limits.max_message_bytes,
            )
        except payload.Refused as refused:
            return _encode(_refusal(refused), 0, protobuf=protobuf)
        result = await self._store(device_id, parsed)
        if result is None:
            return None
        return _encode(result, parsed.sequence, protobuf=parsed.protobuf)

    async def _store(self, device_id: str, parsed: payload.Parsed) -> BatchResult | None:
        """Ingest's result for the message's entries, retried while a dependency fails."""
        assert self._ingest is not None and self._tokens is not None
        failures = 0
        while not self._stopping:
            try:
                token = await self._tokens.token()
                result = await self._ingest.ingest(caller=None, token=token, entries=parsed.entries)
                return _placed(result, parsed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dependency away, or a fault: retried, never lost
                # The database away (SQLAlchemy's OperationalError) is an outage like the
                # others: waited out, not refused after FAILED_ATTEMPTS with a traceback.
                unforeseen = not isinstance(exc, Unavailable | OSError) and not is_passing(exc)
                failures += 1
                if unforeseen and failures >= FAILED_ATTEMPTS:
                    log.exception("MQTT message of device %s could not be stored", device_id)
                    return _refusal(
                        payload.Refused(INGEST_FAILED, "the readings could not be stored; retry")
                    )
                # Every message in flight retries on its own: a line for its first failure and
                # then one in WARN_EVERY, so that an outage is not a line per message a second.
                log.log(
                    logging.WARNING if unforeseen or failures % WARN_EVERY == 1 else logging.DEBUG,
                    "MQTT message of device %s not stored yet (%s); retrying",
                    device_id,
                    type(exc).__name__,
                )
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1])
        return None

    def check(self) -> DependencyCheck:
        """The status page's entry: whether MQTT ingest is on, and with which broker."""

        async def probe() -> str:
            if not self.connected:
                raise ConnectionError("not connected")
            return f"ingest on, {self.broker.display}"

        return lambda: run_check(probe, name="mqtt", service="telemetry")


def off_check() -> DependencyCheck:
    """The status page's entry when no broker is configured: MQTT ingest is off."""

    async def check() -> system_pb2.DependencyStatus:
        return system_pb2.DependencyStatus(
            name="mqtt",
            service="telemetry",
            status="healthy",
            detail="ingest off: no broker (IOT_MQTT_URL unset, mosquitto not installed)",
            optional=True,
        )

    return check


def _placed(result: BatchResult, parsed: payload.Parsed) -> BatchResult:
    """Ingest's result for the entries it was given, indexed as in the whole message."""
    placed = BatchResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejections=[
            *parsed.refused,
            *(replace(r, index=parsed.places[r.index]) for r in result.rejections),
        ],
        stream_ids=[""] * parsed.total,
    )
    for index, stream_id in zip(parsed.places, result.stream_ids, strict=True):
        placed.stream_ids[index] = stream_id
    placed.rejections.sort(key=lambda r: r.index)
    return placed


def _refusal(refused: payload.Refused) -> BatchResult:
    """The result of a message refused whole."""
    return BatchResult(rejections=[Rejected(0, "", 0, refused.reason, refused.message)])


def _encode(result: BatchResult, sequence: int, *, protobuf: bool) -> tuple[bytes, str]:
    """A BatchAck as the device's message was: protobuf, or JSON with the proto field names."""
    ack = ack_message(sequence, result)
    if protobuf:
        return ack.SerializeToString(), "application/x-protobuf"
    document = json_format.MessageToDict(
        ack, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(document).encode(), "application/json"
