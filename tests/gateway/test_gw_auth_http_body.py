"""The gateway's generic raw answer for RPCs returning ``google.api.HttpBody``."""

from __future__ import annotations

from google.api import httpbody_pb2
from google.protobuf import empty_pb2

from gateway.http_body import http_body_content, http_body_response, is_http_body


def test_http_body_is_recognised_by_its_descriptor() -> None:
    assert is_http_body(httpbody_pb2.HttpBody.DESCRIPTOR)
    assert not is_http_body(empty_pb2.Empty.DESCRIPTOR)


def test_the_answer_is_the_bytes_with_their_type() -> None:
    typed = http_body_response(
        httpbody_pb2.HttpBody(content_type="text/csv; charset=utf-8", data=b"a,b\n"), status=200
    )
    assert typed.body == b"a,b\n" and typed.status_code == 200
    assert typed.headers["content-type"] == "text/csv; charset=utf-8"
    assert typed.headers["x-content-type-options"] == "nosniff"
    untyped = http_body_response(httpbody_pb2.HttpBody(data=b"\x00\x01"), status=201)
    assert untyped.headers["content-type"] == "application/octet-stream"
    assert untyped.status_code == 201


def test_openapi_documents_any_binary_content() -> None:
    assert http_body_content() == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
