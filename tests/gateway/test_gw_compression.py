"""Compressed answers: JSON and console files are gzipped for browsers that ask; live
streams and files that are compressed already are sent as they are."""

from __future__ import annotations

import json

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.compression import MINIMUM_SIZE, compression

GZIP = {"Accept-Encoding": "gzip"}


async def test_json_answers_are_gzipped_when_the_client_accepts_it(
    client: httpx.AsyncClient,
) -> None:
    document = await client.get("/openapi.json", headers=GZIP)
    assert document.status_code == 200
    assert document.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in document.headers["vary"].lower()
    assert int(document.headers["content-length"]) < len(document.content)
    assert document.json()["openapi"].startswith("3.")
    plain = await client.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == document.json()


async def test_small_answers_are_not_worth_compressing(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz", headers=GZIP)
    assert len(health.content) < MINIMUM_SIZE
    assert "content-encoding" not in health.headers


async def test_console_scripts_are_gzipped(client: httpx.AsyncClient) -> None:
    for path in ("/static/js/app.js", "/static/vendor/preact.js"):
        script = await client.get(path, headers=GZIP)
        assert script.status_code == 200, path
        assert script.headers["content-encoding"] == "gzip", path
        assert script.headers["content-type"].startswith("text/javascript"), path
        assert int(script.headers["content-length"]) < len(script.content), path
        # Not the same bytes as the file: a weak tag, which still revalidates.
        assert script.headers["etag"].startswith('W/"'), path
        again = await client.get(path, headers={**GZIP, "If-None-Match": script.headers["etag"]})
        assert again.status_code == 304, path
        plain = await client.get(path, headers={"Accept-Encoding": "identity"})
        assert plain.headers["etag"] == script.headers["etag"].removeprefix("W/"), path


async def test_server_sent_events_are_not_compressed_and_arrive_one_by_one(
    client: httpx.AsyncClient,
) -> None:
    # limit=-1: the fake stream sends one event, then stays open until the client leaves.
    # A buffering compressor would hold that event back, and this read would never end.
    async with client.stream(
        "GET", "/v1/things:watch", params={"limit": "-1"}, headers=GZIP
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                assert json.loads(line.removeprefix("data: "))["thing_id"] == "live"
                break
        else:
            raise AssertionError("the stream ended before its first event")


async def test_downloads_compressed_already_are_sent_as_they_are() -> None:
    body = b"PK\x03\x04" + bytes(range(256)) * 16

    async def download(request: Request) -> Response:
        return Response(body, media_type=request.query_params["type"])

    app = Starlette(routes=[Route("/download", download)], middleware=compression())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as http:
        for media in ("application/zip", "application/gzip", "application/octet-stream"):
            sent = await http.get("/download", params={"type": media}, headers=GZIP)
            assert "content-encoding" not in sent.headers, media
            assert sent.content == body, media
        text = await http.get("/download", params={"type": "text/csv"}, headers=GZIP)
        assert text.headers["content-encoding"] == "gzip"
