"""Serving one RPC route: read the body, build the request, call upstream, answer.

Unary RPCs answer the envelope (or the bare message for ``raw_response``);
server-streaming RPCs answer Server-Sent Events. Client-streaming RPCs are
raw uploads: the request body, unparsed, is streamed to them as messages
(path and query fields on the first, the bytes field holding up to 1 MiB of
the body in each), so the gateway never holds a whole file and gRPC flow
control slows the HTTP client down to what the service takes. gRPC failures
become :class:`GatewayError`, which the dispatcher renders as the failure
envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.api import httpbody_pb2
from google.protobuf.message import Message
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message as AsgiMessage
from starlette.types import Receive

from gateway.discovery import HttpBinding, RpcMethod
from gateway.early_status import StatusWatch
from gateway.envelope import EnvelopeResponse, failure_body, success_response
from gateway.errors import GatewayError, from_rpc_error
from gateway.http_body import http_body_response, is_http_body
from gateway.metadata import REQUEST_ID_KEY, forwarded_metadata, header_value, request_id_from
from gateway.proto_json import message_to_dict
from gateway.sse import (
    EventStreamResponse,
    data_event,
    error_event,
    event_id_of,
    with_last_event_id,
)
from gateway.transcode import build_request
from gateway.upstream import Upstreams
from iotkit.streams import OPEN_HEADER

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Largest request body accepted (10 MiB); larger ones answer 413."""

QUIET_STREAM_WAIT_SECONDS = 10.0
"""How long a stream that neither answers nor sends its headers may take before its response
starts anyway (a servicer that does not open its stream; the suite's own servicers do)."""

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest raw upload accepted (100 MiB); larger ones answer 413."""

UPLOAD_CHUNK_BYTES = 1024 * 1024
"""Most bytes of a raw upload carried by one message."""

UPLOAD_DEADLINE_SECONDS = 900.0
"""Deadline of an upload call: long enough for 100 MiB over a slow link, yet finite."""


def to_json(message: Message, binding: HttpBinding | None = None) -> Any:
    """The proto JSON of ``message`` (proto names, defaults included), or of ``response_body``."""
    data = message_to_dict(message)
    if binding is not None and binding.response_body:
        return data.get(binding.response_body)
    return data


async def _opened(call: grpc.aio.UnaryStreamCall[Any, Any]) -> None:
    """Returns once the service has said that it accepted the stream (``iotkit.streams``);
    never for a refused call, whose answer is its first reply."""
    metadata = await call.initial_metadata()
    if tuple(OPEN_HEADER) not in list(metadata or ()):
        await asyncio.Event().wait()


async def _disconnected(request: Request) -> None:
    """Return once the HTTP client has gone away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _too_large(limit: int) -> GatewayError:
    mib, rest = divmod(limit, 1024 * 1024)
    size = f"{mib} MiB" if mib and not rest else f"{limit} bytes"
    return GatewayError(
        status=413, code="PAYLOAD_TOO_LARGE", message=f"Request body exceeds {size}"
    )


def _client_left() -> GatewayError:
    # Not a gateway fault: the client gave up mid-upload. 499 is what the access log shows.
    return GatewayError(status=499, code="CLIENT_CLOSED_REQUEST", message="Client left")


def _body_timeout(seconds: float) -> GatewayError:
    return GatewayError(
        status=408,
        code="REQUEST_TIMEOUT",
        message=f"The request body stopped arriving (nothing for {seconds:g} s)",
        # What is left of the body would be read as the next request: the connection ends.
        headers={"Connection": "close"},
    )


def timed_receive(receive: Receive, seconds: float) -> Receive:
    """``receive``, raising a 408 when a piece of the request body takes over ``seconds`` to
    arrive. uvicorn waits for a body for ever: a client that sends headers and part of a
    body would hold the connection, and the request's task, as long as it liked. Once the
    body is in, messages (the client's disconnect, awaited by live streams) are not timed.
    """
    complete = False

    async def timed() -> AsgiMessage:
        nonlocal complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout(seconds):
                message = await receive()
        except TimeoutError:
            raise _body_timeout(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return timed


def check_declared_size(request: Request, limit: int) -> None:
    """Refuse (413) a body whose declared length is over ``limit`` before reading any of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def body_pieces(request: Request, limit: int, size: int) -> AsyncGenerator[bytes, None]:
    """The request body in pieces of ``size`` bytes (the last may be shorter); 413 past limit."""
    pending = bytearray()
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            pending += chunk
            while len(pending) >= size:
                yield bytes(pending[:size])
                del pending[:size]
    except ClientDisconnect:
        raise _client_left() from None
    if pending:
        yield bytes(pending)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without buffering them."""
    check_declared_size(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise _client_left() from None
    return b"".join(chunks)


async def _write(call: grpc.aio.StreamUnaryCall[Message, Message], message: Message) -> bool:
    """Send one message of a client stream; False when the call has already ended."""
    if call.done():
        return False
    try:
        await call.write(message)
    except asyncio.InvalidStateError:
        return False
    except grpc.aio.AioRpcError:
        return False  # the service ended the call: its answer is read from the call
    return True


def _query(request: Request) -> list[tuple[str, str]]:
    """The query's parameters in order; most requests have none, and parsing nothing through
    Starlette's QueryParams is a measurable part of a cheap call."""
    if not request.scope.get("query_string"):
        return []
    return request.query_params.multi_items()


def _check_json_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # A missing type is accepted so that curl -d and bare fetch() calls work.
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise GatewayError(
            status=415,
            code="UNSUPPORTED_MEDIA_TYPE",
            message="Request body must be application/json",
        )


@dataclass(frozen=True, slots=True)
class RpcHandler:
    """Serves the HTTP binding ``binding`` of ``method`` through ``upstreams``."""

    method: RpcMethod
    binding: HttpBinding
    upstreams: Upstreams
    deadline: float
    max_body_bytes: int = MAX_BODY_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES

    async def __call__(self, request: Request, params: Mapping[str, str]) -> Response:
        """Answer one request; raises GatewayError for every expected failure."""
        if self.method.client_streaming:
            return await self._upload(request, params)
        body = b""
        if self.binding.body:
            body = await read_body(request, self.max_body_bytes)
            if body.strip():
                _check_json_content_type(request)
        query = _query(request)
        if self.method.server_streaming:
            query = with_last_event_id(
                self.method.request_class.DESCRIPTOR, query, request.headers.get("last-event-id")
            )
        message = build_request(
            self.method, self.binding, path_params=params, query=query, body=body
        )
        metadata = self._metadata(request)
        if self.method.server_streaming:
            return await self._stream(request, message, metadata)
        call = self.upstreams.unary(
            self.method.upstream, self.method.grpc_path, self.method.response_class
        )
        try:
            reply = await call(message, metadata=metadata, timeout=self.deadline)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        return self._answer(reply)

    @staticmethod
    def _metadata(request: Request) -> tuple[tuple[str, str], ...]:
        # From the scope itself: Starlette's Headers and State cost more to build than this.
        scope = request.scope
        headers = scope["headers"]
        request_id = scope.get("state", {}).get("request_id") or request_id_from(
            header_value(headers, REQUEST_ID_KEY)
        )
        client = scope.get("client")
        return forwarded_metadata(
            headers, client_host=client[0] if client else None, request_id=request_id
        )

    def _error(self, exc: grpc.aio.AioRpcError) -> GatewayError:
        return from_rpc_error(
            exc, service=self.method.upstream, request=self.method.request_class.DESCRIPTOR
        )

    def _answer(self, reply: Message) -> Response:
        presentation = self.method.presentation
        if is_http_body(reply.DESCRIPTOR):
            return http_body_response(reply, status=presentation.success_status)
        data = to_json(reply, self.binding)
        if presentation.raw_response:
            return EnvelopeResponse(data, status_code=presentation.success_status)
        message = presentation.success_message
        if presentation.message_field:
            # The service's own words when the answer says more than "it worked".
            message = getattr(reply, presentation.message_field) or message
        return success_response(data, status=presentation.success_status, message=message)

    async def _upload(self, request: Request, params: Mapping[str, str]) -> Response:
        # Size, path and query first: each is refused before any byte of the body is read.
        check_declared_size(request, self.max_upload_bytes)
        first = build_request(
            self.method,
            self.binding,
            path_params=params,
            query=_query(request),
            body=b"",
        )
        pieces = body_pieces(request, self.max_upload_bytes, UPLOAD_CHUNK_BYTES)
        callable_ = self.upstreams.client_stream(
            self.method.upstream, self.method.grpc_path, self.method.response_class
        )
        call = callable_(metadata=self._metadata(request), timeout=UPLOAD_DEADLINE_SECONDS)
        watch = StatusWatch(call)
        try:
            reply = await self._send_body(call, first, pieces)
        except grpc.aio.AioRpcError as exc:
            raise self._error(watch.error(exc)) from None
        except BaseException:
            call.cancel()  # the service must not take a cut-off body for a whole one
            raise
        finally:
            await pieces.aclose()
        return self._answer(reply)

    async def _send_body(
        self,
        call: grpc.aio.StreamUnaryCall[Message, Message],
        first: Message,
        pieces: AsyncIterator[bytes],
    ) -> Message:
        pending: Message | None = first
        async for piece in pieces:
            message = pending if pending is not None else self.method.request_class()
            pending = None
            setattr(message, self.binding.body, piece)
            if not await _write(call, message):
                break  # the service answered early (a refusal)
        else:
            if pending is not None:
                await _write(call, pending)  # an empty body: the first message alone
            finish = self.method.presentation.finish_field
            # The body is whole: say so in a message of its own, because a cancellation
            # can reach the service after the end of a stream that was cut off.
            if not finish or await _write(call, self.method.request_class(**{finish: True})):
                await call.done_writing()
        # What the service did not read is drained, so that the client gets the answer
        # rather than a reset connection (bounded by the size limit).
        async for _ in pieces:
            pass
        return await call

    async def _stream(
        self, request: Request, message: Message, metadata: tuple[tuple[str, str], ...]
    ) -> Response:
        # No deadline: a live stream lasts as long as the browser keeps it open,
        # and closing the page cancels the call (see EventStreamResponse).
        callable_ = self.upstreams.server_stream(
            self.method.upstream, self.method.grpc_path, self.method.response_class
        )
        call = callable_(message, metadata=metadata)
        replies = call.__aiter__()
        # Wait for the first message so that a refusal (bad token, unknown id) is an
        # ordinary error response with its HTTP status; and meanwhile watch the browser,
        # which may leave before a quiet stream speaks.
        first_reply = asyncio.ensure_future(anext(replies))
        gone = asyncio.ensure_future(_disconnected(request))
        raw = is_http_body(self.method.response_class.DESCRIPTOR)
        # A live stream may stay quiet for long: its servicer says when it has accepted the
        # call (iotkit.streams), and then the response starts. Waiting for that rather than
        # for a clock keeps a refusal a 4xx on a loaded machine. A raw download needs its
        # first message for the content type.
        opened = asyncio.ensure_future(_opened(call))
        await asyncio.wait(
            {first_reply, gone} if raw else {first_reply, gone, opened},
            timeout=None if raw else QUIET_STREAM_WAIT_SECONDS,
            return_when=asyncio.FIRST_COMPLETED,
        )
        gone.cancel()
        opened.cancel()
        if not first_reply.done() and (raw or gone.done()):
            first_reply.cancel()
            call.cancel()
            raise GatewayError(status=499, code="CLIENT_CLOSED_REQUEST", message="Client left")
        first: Message | None = None
        if first_reply.done():
            try:
                first = first_reply.result()
            except StopAsyncIteration:
                first_reply = None  # type: ignore[assignment]
            except grpc.aio.AioRpcError as exc:
                raise self._error(exc) from None
        error = self._error
        path = request.url.path
        binding = self.binding

        if raw:
            assert isinstance(first, httpbody_pb2.HttpBody) or first is None

            async def chunks() -> AsyncGenerator[bytes, None]:
                try:
                    if first is None:
                        return
                    yield first.data
                    async for reply in replies:
                        yield reply.data  # type: ignore[attr-defined]
                finally:
                    call.cancel()

            media = first.content_type if first is not None and first.content_type else None
            return StreamingResponse(
                chunks(),
                media_type=media or "application/octet-stream",
                headers={"X-Content-Type-Options": "nosniff"},
            )

        async def events() -> AsyncGenerator[bytes, None]:
            try:
                head = first
                if head is None and first_reply is not None:
                    yield b": connected\n\n"  # a quiet stream: tell the browser it is open
                    try:
                        head = await first_reply
                    except StopAsyncIteration:
                        return
                if head is None:
                    return
                yield data_event(to_json(head, binding), event_id=event_id_of(head))
                async for reply in replies:
                    yield data_event(to_json(reply, binding), event_id=event_id_of(reply))
            except grpc.aio.AioRpcError as exc:
                yield error_event(failure_body(error(exc), path=path))
            finally:
                call.cancel()

        return EventStreamResponse(events())
