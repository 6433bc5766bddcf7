"""Raw answers: an RPC that returns ``google.api.HttpBody`` answers its bytes as they are.

This is grpc-gateway's convention for files and other non-JSON answers: the
message's ``content_type`` becomes the response's Content-Type and its
``data`` the body, with no envelope. Failures still answer the envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.api import httpbody_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from starlette.responses import Response

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def is_http_body(message: Descriptor) -> bool:
    """True when ``message`` is ``google.api.HttpBody``."""
    return message.full_name == httpbody_pb2.HttpBody.DESCRIPTOR.full_name


def http_body_response(reply: Message, *, status: int) -> Response:
    """The HTTP response of an HttpBody answer: its bytes, typed, never sniffed."""
    assert isinstance(reply, httpbody_pb2.HttpBody)
    return Response(
        reply.data,
        status_code=status,
        media_type=reply.content_type or DEFAULT_CONTENT_TYPE,
        # A browser must not reinterpret a download (an XML or CSV export) as a page.
        headers={"X-Content-Type-Options": "nosniff"},
    )


def http_body_content(content_types: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI ``content`` of an HttpBody answer: its declared types (any when none).

    A JSON type is documented as any JSON value (the file's own structure is not a
    message); other types as binary.
    """
    binary = {"schema": {"type": "string", "format": "binary"}}
    if not content_types:
        return {"*/*": binary}
    return {
        media: {"schema": {}} if media.endswith(("/json", "+json")) else binary
        for media in content_types
    }
