"""The web console: a static single-page app served at ``/`` and ``/static/*``,
its icon at ``/favicon.ico``, and the API documentation page at ``/docs``.

Only files present in ``gateway/static`` when the app is built are served,
each as an exact route, so no request path can reach outside that folder.
The console holds an access token, so its pages forbid foreign scripts and
framing with a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

from gateway.routing import Handler, Route
from gateway.static_files import StaticFile
from gateway.templates import parse_template

STATIC_DIR = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _file_handler(path: Path) -> Handler:
    # Revalidated on every use, index.html included (see gateway.static_files for why).
    return StaticFile(path, SECURITY_HEADERS)


def console_routes(static_dir: Path = STATIC_DIR) -> list[Route]:
    """GET routes for ``/`` (the console page), ``/docs``, ``/favicon.ico`` and each
    file of ``static_dir`` under /static/."""
    routes: list[Route] = []
    index = static_dir / "index.html"
    if index.is_file():
        routes.append(Route("GET", parse_template("/"), _file_handler(index)))
    docs = static_dir / "docs.html"
    if docs.is_file():
        # The interactive API documentation (Swagger UI over /openapi.json).
        routes.append(Route("GET", parse_template("/docs"), _file_handler(docs)))
    icon = static_dir / "favicon.svg"
    if icon.is_file():
        # Browsers ask for /favicon.ico whatever the page links; the SVG is the icon (its
        # media type comes from its name, and the page's link says so too).
        routes.append(Route("GET", parse_template("/favicon.ico"), _file_handler(icon)))
    for path in sorted(static_dir.rglob("*")):
        if path.is_file():
            url = "/static/" + path.relative_to(static_dir).as_posix()
            routes.append(Route("GET", parse_template(url), _file_handler(path)))
    return routes
