"""The route table: (HTTP method, raw path) -> handler and bound path variables.

Google-style templates (``{name=devices/*}``, ``:verb``) are not Starlette's
syntax, so the gateway routes itself behind one catch-all Starlette route. That
also makes 404 and 405 answers the same envelope as every other error.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.discovery import HttpBinding, RpcMethod
from gateway.errors import GatewayError
from gateway.templates import PathTemplate

Handler = Callable[[Request, Mapping[str, str]], Awaitable[Response]]
"""Serves one matched request, given the decoded path variables."""


class RouteConflict(ValueError):
    """Two routes would answer the same request."""


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP method and path template, and what serves it."""

    verb: str
    template: PathTemplate
    handler: Handler
    rpc: RpcMethod | None = None
    binding: HttpBinding | None = None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route chosen for a request, with its path variables."""

    route: Route
    params: dict[str, str]


_GROUP = re.compile(r"\(\?P<v\d+>")


def _shape(template: PathTemplate) -> str:
    # Two templates that differ only in variable names match the same paths.
    return _GROUP.sub("(", template.regex.pattern)


class RouteTable:
    """Routes sorted most specific first; :meth:`match` answers 404 and 405 as GatewayErrors."""

    def __init__(self, routes: Iterable[Route]) -> None:
        ordered = sorted(routes, key=lambda route: route.template.specificity())
        seen: dict[tuple[str, str], Route] = {}
        for route in ordered:
            key = (route.verb, _shape(route.template))
            if key in seen:
                raise RouteConflict(
                    f"{route.verb} {route.template} and {seen[key].template} match the same paths"
                )
            seen[key] = route
        self.routes: tuple[Route, ...] = tuple(ordered)

    def check_reserved(self, paths: Iterable[str]) -> None:
        """Raise RouteConflict if an RPC route would answer one of the gateway's own ``paths``."""
        for path in paths:
            for route in self.routes:
                if route.rpc is not None and route.template.match(path) is not None:
                    raise RouteConflict(
                        f"{route.rpc.descriptor.full_name} ({route.verb} {route.template}) "
                        f"collides with the gateway's own {path}"
                    )

    def match(self, verb: str, raw_path: str) -> RouteMatch:
        """The route for a request; raises 404 NOT_FOUND or 405 METHOD_NOT_ALLOWED."""
        allowed: list[str] = []
        for route in self.routes:
            params = route.template.match(raw_path)
            if params is None:
                continue
            if route.verb == verb:
                return RouteMatch(route, params)
            if route.verb not in allowed:
                allowed.append(route.verb)
        if allowed:
            raise GatewayError(
                status=405,
                code="METHOD_NOT_ALLOWED",
                message=f"Method {verb} is not allowed here; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise GatewayError(status=404, code="NOT_FOUND", message="No such endpoint")
