"""Upstream services: which process serves an API, and one gRPC channel per address.

A gRPC service ``iot.<process>.v1.X`` is served by the process its package
names, unless the service says otherwise with the ``(iot.common.v1.served_by)``
option (the suite's status, ``iot.system.v1.SystemService``, is served by the
auth process, which aggregates it). Channels are opened when the app starts (inside the running
event loop, as ``grpc.aio`` requires) and closed when it stops.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from iot.common.v1 import options_pb2
from iotkit.config import SERVICES, Settings
from iotkit.server import channel

DEFAULT_DEADLINE_SECONDS = 10.0
"""Deadline of each unary call; a slow service answers 504 rather than hanging the browser."""

_SERVICE_NAME = re.compile(r"iot\.([a-z0-9_]+)\.v\d+\.[A-Za-z0-9_]+\Z")


def upstream_of(service: ServiceDescriptor) -> str | None:
    """The process serving the gRPC ``service``, or None if no process of the suite does."""
    options = service.GetOptions()
    named = options.Extensions[options_pb2.served_by]
    if not named:
        found = _SERVICE_NAME.match(service.full_name)
        named = found[1] if found else ""
    return named if named in SERVICES else None


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class Upstreams:
    """The gRPC channels to the services, one per distinct address."""

    def __init__(self, settings: Settings, names: Iterable[str]) -> None:
        self._addresses = {name: settings.address(name) for name in sorted(set(names))}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[tuple[str, str, str], object] = {}

    def address(self, name: str) -> str:
        """The ``host:port`` of service ``name``."""
        return self._addresses[name]

    async def open(self) -> None:
        """Create the channels; call from within the event loop that will use them."""
        for address in set(self._addresses.values()):
            # Untraced: every call carries the request's trace in its metadata already
            # (gateway.metadata), streams included.
            self._channels[address] = channel(address, traced=False)

    async def close(self) -> None:
        """Close every channel, cancelling calls still in flight."""
        channels, self._channels = self._channels, {}
        self._callables.clear()
        for open_channel in channels.values():
            await open_channel.close()

    def _channel(self, name: str) -> grpc.aio.Channel:
        try:
            return self._channels[self._addresses[name]]
        except KeyError:
            raise RuntimeError(f"no open channel to {name}; is the app started?") from None

    def _callable(self, name: str, path: str, response_class: type[Message], kind: str) -> object:
        key = (name, path, kind)
        found = self._callables.get(key)
        if found is None:
            open_channel = self._channel(name)
            factories = {
                "unary": open_channel.unary_unary,
                "server_stream": open_channel.unary_stream,
                "client_stream": open_channel.stream_unary,
            }
            found = factories[kind](
                path, request_serializer=_serialize, response_deserializer=response_class.FromString
            )
            self._callables[key] = found
        return found

    def unary(
        self, name: str, path: str, response_class: type[Message]
    ) -> grpc.aio.UnaryUnaryMultiCallable[Message, Message]:
        """A generic unary callable for ``path`` on the channel to service ``name``."""
        return self._callable(name, path, response_class, "unary")  # type: ignore[return-value]

    def server_stream(
        self, name: str, path: str, response_class: type[Message]
    ) -> grpc.aio.UnaryStreamMultiCallable[Message, Message]:
        """A generic server-streaming callable for ``path`` on the channel to service ``name``."""
        return self._callable(name, path, response_class, "server_stream")  # type: ignore[return-value]

    def client_stream(
        self, name: str, path: str, response_class: type[Message]
    ) -> grpc.aio.StreamUnaryMultiCallable[Message, Message]:
        """A generic client-streaming callable for ``path`` on the channel to service ``name``."""
        return self._callable(name, path, response_class, "client_stream")  # type: ignore[return-value]
