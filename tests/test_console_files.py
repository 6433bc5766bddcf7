"""The web console's files, without a browser: the vendored packages are the versions
console/package.json pins, the page loads nothing from another host, and it holds no
inline script or style (the gateway's Content-Security-Policy forbids them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "gateway" / "static"
# Vendored plain scripts (UMD bundles that set a global), loaded by <script src> only.
CLASSIC_SCRIPTS = {"swagger-ui-bundle.js"}


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
        if path.name in CLASSIC_SCRIPTS:
            continue  # not a module: it imports nothing, and its text holds odd "from"s
        # Bare specifiers would need an import map, which the CSP does not allow inline.
        imports = re.findall(r"(?:from|import)\s*[\"']([^\"']+)[\"']", path.read_text())
        assert all(spec.startswith("./") for spec in imports), (path, imports)


def _scripts_of_a_page_without_inline_code(name: str) -> list[str]:
    """The <script> tags of ``name``, after checking it holds no inline style or handler."""
    page = (STATIC / name).read_text()
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handlers need 'unsafe-inline'"
    return re.findall(r"<script\b[^>]*>", page)


def test_the_page_has_no_inline_script_or_style() -> None:
    assert _scripts_of_a_page_without_inline_code("index.html") == [
        '<script type="module" src="/static/js/app.js">'
    ]


def test_the_docs_page_has_no_inline_script_or_style() -> None:
    assert _scripts_of_a_page_without_inline_code("docs.html") == [
        '<script defer src="/static/vendor/swagger-ui-bundle.js">',
        '<script defer src="/static/js/docs.js">',
    ]
