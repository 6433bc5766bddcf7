"""An MQTT 5 client for asyncio, over paho-mqtt's own network thread, and the broker's settings.

The suite never speaks MQTT itself: paho does, in its thread (``loop_start``),
reconnecting on its own; this module hands its callbacks to the event loop and
answers publishes as awaitables. ``manual_ack`` is on for consumers, so that a
QoS 1 message is acknowledged (PUBACK) only when its handler says it is stored.

``IOT_MQTT_URL`` names the broker, ``mqtt://admin:password@host:port`` (the user
and password are the dynamic-security administrator's, used by devices only).
Telemetry's own broker password is derived from the service secret, so that
devices can provision it and telemetry can use it without another setting.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883
TELEMETRY_USER = "iot-telemetry"
"""The broker user telemetry consumes as (provisioned by devices)."""
TOPIC_PREFIX = "iot/v1/devices"
SHARE_GROUP = "telemetry"
SESSION_EXPIRY = 7 * 24 * 3600
"""How long the broker keeps a consumer's session, and its queued readings, while it is away."""
RECEIVE_MAXIMUM = 256
"""Messages the broker may have in flight to a consumer (unacknowledged) at once."""


def readings_topic(device_id: str) -> str:
    """Where a device publishes its readings."""
    return f"{TOPIC_PREFIX}/{device_id}/readings"


def acks_topic(device_id: str) -> str:
    """Where a device reads the outcome of each of its messages."""
    return f"{TOPIC_PREFIX}/{device_id}/acks"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A broker and, when the URL carried them, the credentials to use there."""

    host: str
    port: int
    username: str = ""
    password: str = ""

    @property
    def display(self) -> str:
        """``mqtt://host:port``, without credentials: safe for logs and the status page."""
        return f"mqtt://{self.host}:{self.port}"


def parse_url(url: str) -> BrokerAddress:
    """The broker of an ``mqtt://[user:password@]host[:port]`` URL; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError("IOT_MQTT_URL must be mqtt://[user:password@]host[:port]")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or DEFAULT_PORT,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def telemetry_password(service_secret: str) -> str:
    """Telemetry's broker password: known to devices (which provisions it) and telemetry."""
    return hmac.new(service_secret.encode(), b"iot mqtt telemetry", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Message:
    """A message received, with what a consumer needs to answer it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    content_type: str
    correlation: bytes | None
    duplicate: bool


Handler = Callable[[Message], None]
"""Told each message, on the event loop's thread."""


class MqttClient:
    """One MQTT 5 connection, used from asyncio; reconnects by itself until closed."""

    def __init__(
        self,
        *,
        broker: BrokerAddress,
        client_id: str = "",
        username: str = "",
        password: str = "",
        persistent: bool = False,
        manual_ack: bool = False,
        subscriptions: tuple[str, ...] = (),
        on_message: Handler | None = None,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        """``on_connect`` is told, on the event loop, of each connection the broker accepts
        (the first and every reconnection)."""
        self._broker = broker
        self._on_connect = on_connect
        self._persistent = persistent
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._refusal = asyncio.Event()  # the broker refused the connection or a subscription
        self._published: dict[int, asyncio.Future[None]] = {}
        self.refused = ""
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"iot-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
        )
        self._client.username_pw_set(username or None, password or None)
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._connected_cb
        self._client.on_disconnect = self._disconnected_cb
        self._client.on_message = self._message_cb
        self._client.on_publish = self._published_cb
        self._client.on_subscribe = self._subscribed_cb

    async def start(self, *, timeout: float = 10.0) -> None:
        """Connect (and subscribe); raises ConnectionError when the broker does not take us."""
        self._loop = asyncio.get_running_loop()
        properties = Properties(PacketTypes.CONNECT)
        if self._persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(
            self._broker.host,
            self._broker.port,
            keepalive=30,
            clean_start=not self._persistent,
            properties=properties,
        )
        self._client.loop_start()
        try:
            await self._first(self._connected, timeout)
            if self._subscriptions:
                await self._first(self._subscribed, timeout)
        except TimeoutError:
            self.close()
            raise ConnectionError(
                f"MQTT broker {self._broker.display} did not accept the connection"
                + (f" ({self.refused})" if self.refused else "")
            ) from None

    async def _first(self, event: asyncio.Event, timeout: float) -> None:
        """Wait for ``event``; a refusal by the broker ends the wait at once (TimeoutError)."""
        self._refusal.clear()
        waits = [asyncio.ensure_future(e.wait()) for e in (event, self._refusal)]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not event.is_set():
            raise TimeoutError

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return self._connected.is_set()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        content_type: str = "",
        correlation: bytes | None = None,
        timeout: float = 10.0,
        wait: bool = True,
    ) -> None:
        """Publish, and for QoS 1 wait for the broker's PUBACK unless ``wait`` is False (paho
        then sends it again on a reconnect by itself); raises ConnectionError."""
        properties = Properties(PacketTypes.PUBLISH)
        if content_type:
            properties.ContentType = content_type
        if correlation:
            properties.CorrelationData = correlation
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        info = self._client.publish(topic, payload, qos=qos, properties=properties)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"publish failed: {paho.error_string(info.rc)}")
        if qos == 0 or not wait:
            return
        # The PUBACK is resolved on this loop (see _call), so registering now is never late.
        self._published[info.mid] = done
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            self._published.pop(info.mid, None)
            raise ConnectionError("the broker did not acknowledge the message") from None

    def ack(self, message: Message) -> None:
        """Acknowledge a QoS 1 message (manual_ack): the broker will not send it again."""
        if message.qos:
            self._client.ack(message.mid, message.qos)

    def close(self) -> None:
        """Disconnect and stop the network thread; unacknowledged messages stay with the broker."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # paho's callbacks run in its network thread: each hands over to the event loop.

    def _call(self, function: Callable[..., Any], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(function, *args)

    def _connected_cb(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            self._call(self._refusal.set)
            return
        self.refused = ""
        if self._subscriptions:
            options = paho.SubscribeOptions(qos=1)
            client.subscribe([(topic, options) for topic in self._subscriptions])
        self._call(self._connected.set)
        if self._on_connect is not None:
            self._call(self._on_connect)

    def _disconnected_cb(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._call(self._connected.clear)

    def _subscribed_cb(
        self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if all(not r.is_failure for r in reasons):
            self._call(self._subscribed.set)
        else:
            self.refused = "subscription refused: " + ", ".join(str(r) for r in reasons)
            log.error("MQTT %s", self.refused)
            self._call(self._refusal.set)

    def _published_cb(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        self._call(self._resolve, mid, None if not reason.is_failure else str(reason))

    def _resolve(self, mid: int, failure: str | None) -> None:
        done = self._published.pop(mid, None)
        if done is None or done.done():
            return
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(ConnectionError(f"the broker refused the message: {failure}"))

    def _message_cb(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is None:
            return
        properties = getattr(message, "properties", None)
        received = Message(
            topic=message.topic,
            payload=bytes(message.payload),
            mid=message.mid,
            qos=message.qos,
            content_type=getattr(properties, "ContentType", "") or "",
            correlation=getattr(properties, "CorrelationData", None),
            duplicate=bool(message.dup),
        )
        self._call(self._on_message, received)
