"""The interactive API documentation at /docs: a page of the gateway's own files over
/openapi.json, under the console's strict Content-Security-Policy."""

from __future__ import annotations

import re

import httpx

from gateway.console import SECURITY_HEADERS


async def test_docs_is_a_page_of_same_origin_assets_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == SECURITY_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "<style" not in page.text and " style=" not in page.text
    assert all(script.endswith("></script>") for script in re.findall(r"<script\b.*", page.text))
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/vendor/swagger-ui-bundle.js" in assets
    assert "/static/js/docs.js" in assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        if asset != "/":
            served = await client.get(asset)
            assert served.status_code == 200, asset
    script = (await client.get("/static/js/docs.js")).text
    assert '"/openapi.json"' in script


async def test_the_console_links_to_the_docs(client: httpx.AsyncClient) -> None:
    shell = await client.get("/static/js/app.js")
    assert 'href="/docs"' in shell.text
