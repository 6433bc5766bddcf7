"""Provisioning the MQTT broker through Mosquitto's dynamic-security plugin.

Devices is the broker's administrator: it publishes dynsec commands to
``$CONTROL/dynamic-security/v1`` and reads their answers. Each device with a
working credential is a broker client named by its id, whose password is the
credential, with a role of its own that may publish only to its readings topic
and subscribe only to its acknowledgement topic. Rotating a credential replaces
the client (so the old password stops at once); revoking deletes it, which
makes the broker disconnect the device. Telemetry has its own client and role:
it shares the readings subscription and publishes acknowledgements.

Every command list starts by deleting what it creates, so replaying it (a
retry, a restart) gives the same broker state. Each time the broker accepts
devices' connection (at start, and when it is back after an outage, maybe
without its state), telemetry's client is provisioned again and ``on_ready``
runs (the reconciliation of ``services.devices.broker_sync``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from iotkit import mqtt
from iotkit.mqtt import BrokerAddress, Message, MqttClient

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ANSWER_TIMEOUT = 5.0
TELEMETRY_ROLE = "iot-telemetry"
LIST_PAGE = 1000
"""Clients listed per dynsec command."""
PROVISION_RETRIES = (1.0, 2.0, 5.0, 10.0)
"""Waits between attempts at provisioning a broker that did not answer."""
# Errors a replayed command list expects (deleting what is not there yet).
_EXPECTED = ("not found",)


class BrokerAccess(Protocol):
    """What the registry tells the broker: who may connect, and who may not any more."""

    async def grant(self, *, device_id: str, password: str) -> None:
        """Let the device connect with ``password`` (replacing any earlier one)."""
        ...

    async def revoke(self, *, device_id: str) -> None:
        """Refuse the device from now on, disconnecting it if it is connected."""
        ...


def device_role(device_id: str) -> str:
    """The dynsec role of one device."""
    return f"device-{device_id}"


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def device_commands(device_id: str, password: str) -> list[dict[str, Any]]:
    """The dynsec commands that (re)create a device's client and role."""
    role = device_role(device_id)
    return [
        *revoke_commands(device_id),
        {
            "command": "createRole",
            "rolename": role,
            "acls": [
                _acl("publishClientSend", mqtt.readings_topic(device_id)),
                _acl("subscribeLiteral", mqtt.acks_topic(device_id)),
            ],
        },
        {
            "command": "createClient",
            "username": device_id,
            "password": password,
            "roles": [{"rolename": role}],
        },
    ]


def revoke_commands(device_id: str) -> list[dict[str, Any]]:
    """The dynsec commands that remove a device (the broker disconnects it)."""
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "deleteRole", "rolename": device_role(device_id)},
    ]


def telemetry_commands(password: str) -> list[dict[str, Any]]:
    """The dynsec commands that (re)create telemetry's client and role."""
    readings = f"{mqtt.TOPIC_PREFIX}/+/readings"
    return [
        {"command": "deleteClient", "username": mqtt.TELEMETRY_USER},
        {"command": "deleteRole", "rolename": TELEMETRY_ROLE},
        {
            "command": "createRole",
            "rolename": TELEMETRY_ROLE,
            "acls": [
                # Mosquitto checks a shared subscription with and without its $share prefix.
                _acl("subscribePattern", f"$share/{mqtt.SHARE_GROUP}/{readings}"),
                _acl("subscribePattern", readings),
                _acl("publishClientSend", f"{mqtt.TOPIC_PREFIX}/+/acks"),
            ],
        },
        {
            "command": "createClient",
            "username": mqtt.TELEMETRY_USER,
            "password": password,
            "roles": [{"rolename": TELEMETRY_ROLE}],
        },
    ]


class DynsecBroker:
    """A :class:`BrokerAccess` that sends dynsec commands as the broker's administrator."""

    def __init__(self, *, broker: BrokerAddress, telemetry_password: str | None) -> None:
        """``telemetry_password`` None provisions nothing at connection (an administrator's
        tool reading or changing clients)."""
        self._broker = broker
        self._telemetry_password = telemetry_password
        self._answers: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self._client = MqttClient(
            broker=broker,
            client_id=f"iot-devices-{uuid.uuid4().hex[:8]}",
            username=broker.username,
            password=broker.password,
            subscriptions=(RESPONSE_TOPIC,),
            on_message=self._answered,
            on_connect=self._connected,
        )
        self._ready: asyncio.Task[None] | None = None
        self._provisioning: asyncio.Task[None] | None = None
        self._again = False
        self.on_ready: Callable[[], Awaitable[object]] | None = None
        """Run after each (re)connection's provisioning: the registry's reconciliation."""

    def start(self) -> None:
        """Connect in the background; each connection provisions telemetry's client."""
        self._ready = asyncio.ensure_future(self.connect())

    async def connect(self) -> None:
        """Connect, retrying until the broker takes us."""
        # paho retries the connection on its own; this waits for the first one.
        while True:
            try:
                await self._client.start(timeout=ANSWER_TIMEOUT)
                return
            except ConnectionError as exc:
                log.warning("MQTT broker %s: %s; retrying", self._broker.display, exc)
                self._client.close()
                await asyncio.sleep(1.0)

    def _connected(self) -> None:
        """A connection was accepted: provision (again, if a provisioning is under way)."""
        if self._telemetry_password is None:
            return
        if self._provisioning is not None and not self._provisioning.done():
            self._again = True
            return
        self._provisioning = asyncio.ensure_future(self._provision())

    async def _provision(self) -> None:
        password = self._telemetry_password
        if password is None:
            return
        attempt = 0
        while True:
            self._again = False
            try:
                await self._run(telemetry_commands(password))
                log.info("MQTT broker %s provisioned for telemetry", self._broker.display)
                if self.on_ready is not None:
                    await self.on_ready()
            except Exception as exc:  # the broker or the registry's database away: try again
                if attempt >= len(PROVISION_RETRIES):
                    # A database error's text may quote its statement's parameters: only its
                    # type is logged (the broker's refusals name commands, never passwords).
                    why = exc if isinstance(exc, RuntimeError) else type(exc).__name__
                    log.error("MQTT broker %s not provisioned: %s", self._broker.display, why)
                    return
                await asyncio.sleep(PROVISION_RETRIES[attempt])
                attempt += 1
                continue
            if not self._again:
                return

    async def close(self) -> None:
        """Disconnect from the broker."""
        for task in (self._ready, self._provisioning):
            if task is not None:
                task.cancel()
        self._client.close()

    async def grant(self, *, device_id: str, password: str) -> None:
        """See :class:`BrokerAccess`."""
        await self._run(device_commands(device_id, password))

    async def revoke(self, *, device_id: str) -> None:
        """See :class:`BrokerAccess`."""
        await self._run(revoke_commands(device_id))

    async def apply(self, *, grants: Sequence[tuple[str, str]], revokes: Sequence[str]) -> None:
        """Grant each (device id, password) of ``grants`` and revoke each device of
        ``revokes``, in one command list."""
        commands = [c for device, password in grants for c in device_commands(device, password)]
        commands += [c for device in revokes for c in revoke_commands(device)]
        if commands:
            await self._run(commands)

    async def client_names(self) -> set[str]:
        """The usernames of every client the broker knows (devices, telemetry, administrator)."""
        names: set[str] = set()
        while True:
            [answer] = await self._run(
                [
                    {
                        "command": "listClients",
                        "verbose": False,
                        "count": LIST_PAGE,
                        "offset": len(names),
                    }
                ]
            )
            data = answer.get("data", {})
            page = [str(name) for name in data.get("clients", [])]
            names.update(page)
            if len(page) < LIST_PAGE or len(names) >= int(data.get("totalCount", 0)):
                return names

    async def _run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send the commands and answer their responses; raises RuntimeError on a failure."""
        tag = uuid.uuid4().hex
        # The broker answers every command with its correlationData: the last one's ends the wait.
        tagged = [{**c, "correlationData": f"{tag}:{i}"} for i, c in enumerate(commands)]
        answer: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._answers[tag] = answer
        try:
            await self._client.publish(
                CONTROL_TOPIC, json.dumps({"commands": tagged}).encode(), qos=1
            )
            responses = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            raise RuntimeError(f"the MQTT broker did not answer ({exc or 'timeout'})") from None
        finally:
            self._answers.pop(tag, None)
        failures = [
            f"{r.get('command')}: {r['error']}"
            for r in responses
            if r.get("error") and not any(e in r["error"].lower() for e in _EXPECTED)
        ]
        if failures:
            raise RuntimeError("the MQTT broker refused: " + "; ".join(failures))
        return responses

    def _answered(self, message: Message) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        if not responses:
            return
        tag = str(responses[-1].get("correlationData", "")).partition(":")[0]
        waiting = self._answers.get(tag)
        if waiting is not None and not waiting.done():
            waiting.set_result(responses)
