"""Caching of the console's files: each is revalidated before use (``no-cache``) with an
ETag of its content, and a browser whose copy is current gets a bodiless 304."""

from __future__ import annotations

import httpx
import pytest

FILES = ("/", "/static/js/app.js", "/static/vendor/preact.js", "/favicon.ico")
# The file's own bytes, whose tag is strong (a gzipped answer's is weak: test_gw_compression).
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.mark.parametrize("path", FILES)
async def test_console_files_carry_validators_and_are_revalidated(
    client: httpx.AsyncClient, path: str
) -> None:
    first = await client.get(path, headers=IDENTITY)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["last-modified"]
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')

    again = await client.get(path, headers={**IDENTITY, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "no-cache"
    # The 304 keeps the page's policy: a cache updates its stored headers from it.
    assert "default-src 'self'" in again.headers["content-security-policy"]


async def test_a_stale_or_weak_tag_and_a_list_are_compared_as_rfc_9110_says(
    client: httpx.AsyncClient,
) -> None:
    etag = (await client.get("/static/js/app.js", headers=IDENTITY)).headers["etag"]
    stale = await client.get("/static/js/app.js", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200 and stale.content
    for listed in (f"W/{etag}", f'"old", {etag}', "*"):
        current = await client.get("/static/js/app.js", headers={"If-None-Match": listed})
        assert current.status_code == 304, listed


async def test_the_tag_is_of_the_content_so_replicas_agree(client: httpx.AsyncClient) -> None:
    script = await client.get("/static/js/app.js")
    vendor = await client.get("/static/vendor/preact.js")
    assert script.headers["etag"] != vendor.headers["etag"]
    assert (await client.get("/static/js/app.js")).headers["etag"] == script.headers["etag"]
