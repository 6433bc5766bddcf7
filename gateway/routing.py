"""The route table: (HTTP method, raw path) -> handler and bound path variables.

Google-style templates (``{name=devices/*}``, ``:verb``) are not Starlette's
syntax, so the gateway routes itself behind one catch-all Starlette route. That
also makes 404 and 405 answers the same envelope as every other error.

``HEAD`` is served by the GET route of a path (the dispatcher drops the body),
and ``OPTIONS`` by the table itself: every path it knows allows both.

A path belongs to its most specific template alone: ``/v1/anomalies/export``
is the export's path, not also an anomaly whose id is "export", so it allows
only the export's methods and answers 405 to the others.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.discovery import HttpBinding, RpcMethod
from gateway.errors import GatewayError
from gateway.templates import PathTemplate, SegmentKind

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


_Key = tuple[str, str]


def _template_key(template: PathTemplate) -> _Key | None:
    """The first two segments of the paths ``template`` matches, when both are literals."""
    head = template.segments[:2]
    if len(head) < 2 or any(segment.kind is not SegmentKind.LITERAL for segment in head):
        return None
    return head[0].text, head[1].text


def _path_key(raw_path: str) -> _Key | None:
    """The key a template of two leading literals would need to match ``raw_path``: its
    first two segments, the second without a ``:verb`` (literals hold no colon)."""
    parts = raw_path.split("/", 3)
    if len(parts) < 3 or parts[0]:
        return None
    return parts[1], parts[2].partition(":")[0]


def _slashes(template: PathTemplate) -> tuple[int, bool]:
    """How many slashes the paths ``template`` matches hold, and whether they may hold more
    (a trailing ``**``). Each segment is one slash-led part (no literal, verb or ``*``
    matches a slash), so the count is exact otherwise."""
    if not template.segments:
        return 1, False  # "/" itself
    open_ended = template.segments[-1].kind is SegmentKind.MULTI
    return len(template.segments), open_ended


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
        self._shapes = tuple(_shape(route.template) for route in ordered)
        # Candidates by the path's first two segments, so that a request tries the dozen
        # routes under its prefix rather than all of them; routes without two leading
        # literals are candidates of every path. Each list keeps the table's order.
        candidates = list(zip(self.routes, self._shapes, strict=True))
        # Each list is split again by the number of slashes of the paths its routes can
        # match (beyond the largest count, only open-ended ``**`` routes remain).
        self._most_slashes = max((_slashes(route.template)[0] for route in self.routes), default=0)
        self._anywhere = self._by_slashes(
            [pair for pair in candidates if _template_key(pair[0].template) is None]
        )
        self._by_key: dict[_Key, list[list[tuple[Route, str]]]] = {}
        for pair in candidates:
            own = _template_key(pair[0].template)
            if own is not None and own not in self._by_key:
                self._by_key[own] = self._by_slashes(
                    [
                        other
                        for other in candidates
                        if _template_key(other[0].template) in {own, None}
                    ]
                )

    def _by_slashes(self, pairs: list[tuple[Route, str]]) -> list[list[tuple[Route, str]]]:
        """``pairs`` by the slash count of a path, from 0 to one past the largest: those whose
        routes can match a path with that many, in the table's order."""
        split: list[list[tuple[Route, str]]] = []
        for count in range(self._most_slashes + 2):
            kept = []
            for pair in pairs:
                least, open_ended = _slashes(pair[0].template)
                if count == least or (open_ended and count > least):
                    kept.append(pair)
            split.append(kept)
        return split

    def check_reserved(self, paths: Iterable[str]) -> None:
        """Raise RouteConflict if an RPC route would answer one of the gateway's own ``paths``."""
        for path in paths:
            for route in self.routes:
                if route.rpc is not None and route.template.match(path) is not None:
                    raise RouteConflict(
                        f"{route.rpc.descriptor.full_name} ({route.verb} {route.template}) "
                        f"collides with the gateway's own {path}"
                    )

    def _candidates(self, raw_path: str) -> list[tuple[Route, str]]:
        key = _path_key(raw_path)
        lists = self._by_key.get(key, self._anywhere) if key else self._anywhere
        return lists[min(raw_path.count("/"), len(lists) - 1)]

    def _best_routes(self, raw_path: str) -> list[Route]:
        """The routes of the most specific template shape matching ``raw_path``: the first
        route whose template matches, and those of the same shape (which match as well)."""
        found: list[Route] = []
        best = ""
        for route, shape in self._candidates(raw_path):
            if found:
                if shape == best:
                    found.append(route)
            elif route.template.regex.fullmatch(raw_path) is not None:
                found.append(route)
                best = shape
        return found

    def routes_for(self, raw_path: str) -> list[RouteMatch]:
        """The routes of ``raw_path``: those of the most specific template shape matching it."""
        return [
            RouteMatch(route, route.template.match(raw_path) or {})
            for route in self._best_routes(raw_path)
        ]

    @staticmethod
    def allowed(matches: Iterable[RouteMatch]) -> list[str]:
        """The methods a path answers, given its routes: theirs, HEAD with GET, and OPTIONS."""
        allowed: list[str] = []
        for found in matches:
            verbs = ("GET", "HEAD") if found.route.verb == "GET" else (found.route.verb,)
            allowed += [verb for verb in verbs if verb not in allowed]
        return [*allowed, "OPTIONS"] if allowed else []

    def match(self, verb: str, raw_path: str) -> RouteMatch:
        """The route for a request (HEAD takes the GET route); raises 404 NOT_FOUND or
        405 METHOD_NOT_ALLOWED (OPTIONS is not a route: the dispatcher answers it)."""
        wanted = "GET" if verb == "HEAD" else verb
        for route in self._best_routes(raw_path):
            if route.verb == wanted:
                # Only the chosen route's variables are decoded.
                return RouteMatch(route, route.template.match(raw_path) or {})
        matches = self.routes_for(raw_path)
        allowed = self.allowed(matches)
        if verb == "OPTIONS" and allowed:
            # Under the template of the path's own route, so that the access log hides
            # its secret variables as it does for the other methods.
            first = matches[0]
            return RouteMatch(Route(verb, first.route.template, _options(allowed)), first.params)
        if allowed:
            raise GatewayError(
                status=405,
                code="METHOD_NOT_ALLOWED",
                message=f"Method {verb} is not allowed here; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise GatewayError(status=404, code="NOT_FOUND", message="No such endpoint")


def _options(allowed: list[str]) -> Handler:
    async def answer(request: Request, params: Mapping[str, str]) -> Response:
        # The gateway has no CORS settings (the console is served from the same origin),
        # so there are no preflight headers to add: only what the path allows.
        return Response(status_code=204, headers={"Allow": ", ".join(allowed)})

    return answer
