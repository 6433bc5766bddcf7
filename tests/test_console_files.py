"""The web console's files, without a browser: the vendored packages are the versions
console/package.json pins, the page loads nothing from another host, and it holds no
inline script or style (the gateway's Content-Security-Policy forbids them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "gateway" / "static"


def test_vendored_packages_are_the_pinned_versions() -> None:
    pinned = json.loads((ROOT / "console" / "package.json").read_text())["dependencies"]
    locked = json.loads((ROOT / "console" / "package-lock.json").read_text())["packages"]
    vendored = json.loads((STATIC / "vendor" / "VERSIONS.json").read_text())
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in pinned.values())
    assert vendored == pinned
    assert {name: locked[f"node_modules/{name}"]["version"] for name in pinned} == pinned


def test_the_console_loads_nothing_from_another_host() -> None:
    own = [*STATIC.glob("*.html"), *STATIC.glob("*.css"), *STATIC.rglob("js/**/*.js")]
    assert own
    for path in own:
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path
        assert not re.search(r"import\s*\(?\s*[\"'](https?:)?//", text), path
    for path in (STATIC / "vendor").glob("*.js"):
        # Bare specifiers would need an import map, which the CSP does not allow inline.
        imports = re.findall(r"(?:from|import)\s*[\"']([^\"']+)[\"']", path.read_text())
        assert all(spec.startswith("./") for spec in imports), (path, imports)


def test_the_page_has_no_inline_script_or_style() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script type="module" src="/static/js/app.js">'
    ]
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handlers need 'unsafe-inline'"
