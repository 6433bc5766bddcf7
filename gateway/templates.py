"""Path templates of ``google.api.http`` rules: parsing and matching.

The grammar is the one of ``google/api/http.proto``::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

Templates are matched against the raw (still percent-encoded) request path so
that an encoded ``%2F`` inside an id never splits a segment; bound values are
decoded afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters a literal may not hold: they are the grammar's own punctuation.
_LITERAL_FORBIDDEN = frozenset("/{}=*:")


class TemplateError(ValueError):
    """A path template does not follow the ``google.api.http`` grammar."""


class SegmentKind(Enum):
    """What one segment of a template matches."""

    LITERAL = "literal"
    SINGLE = "*"
    MULTI = "**"


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``/``-separated piece of a template."""

    kind: SegmentKind
    text: str = ""

    def pattern(self) -> str:
        """The regular expression this segment matches (raw, percent-encoded paths)."""
        if self.kind is SegmentKind.LITERAL:
            return re.escape(self.text)
        if self.kind is SegmentKind.SINGLE:
            return r"[^/]+"
        return r"[^/]+(?:/[^/]+)*"

    def __str__(self) -> str:
        return self.text if self.kind is SegmentKind.LITERAL else self.kind.value


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``{field.path=pattern}`` binding over segments ``start`` to ``end`` (exclusive)."""

    field_path: tuple[str, ...]
    start: int
    end: int
    explicit_pattern: bool

    @property
    def name(self) -> str:
        """The dotted field path, as written in the template."""
        return ".".join(self.field_path)


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template; :meth:`match` binds request paths to field values."""

    source: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str | None
    regex: re.Pattern[str]

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field values bound by ``raw_path`` (decoded), or None when it does not match."""
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        return {var.name: unquote(found[f"v{i}"]) for i, var in enumerate(self.variables)}

    def specificity(self) -> tuple[int, tuple[int, ...]]:
        """Sort key: templates with a verb, then more literal segments, are tried first.

        This is why ``/v1/devices:import`` wins over ``/v1/{name=devices}`` style
        wildcards, and ``/v1/devices/mine`` over ``/v1/devices/{id}``.
        """
        rank = {SegmentKind.LITERAL: 0, SegmentKind.SINGLE: 1, SegmentKind.MULTI: 2}
        return (0 if self.verb else 1, tuple(rank[s.kind] for s in self.segments))

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: each variable becomes ``{field.path}``."""
        parts: list[str] = []
        index = 0
        by_start = {var.start: var for var in self.variables}
        while index < len(self.segments):
            var = by_start.get(index)
            if var is not None:
                parts.append("{" + var.name + "}")
                index = var.end
            else:
                parts.append(str(self.segments[index]))
                index += 1
        return "/" + "/".join(parts) + (f":{self.verb}" if self.verb else "")

    def __str__(self) -> str:
        return self.source


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` outside braces."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _plain_segment(text: str, source: str) -> Segment:
    if text == "*":
        return Segment(SegmentKind.SINGLE)
    if text == "**":
        return Segment(SegmentKind.MULTI)
    if not text:
        raise TemplateError(f"empty segment in path template {source!r}")
    bad = _LITERAL_FORBIDDEN.intersection(text)
    if bad:
        raise TemplateError(
            f"unexpected {''.join(sorted(bad))!r} in segment {text!r} of {source!r}"
        )
    return Segment(SegmentKind.LITERAL, text)


def parse_template(source: str) -> PathTemplate:
    """Parse a ``google.api.http`` path template; raises :class:`TemplateError`."""
    if not source.startswith("/"):
        raise TemplateError(f"path template {source!r} must start with '/'")
    if source == "/":
        # Not in the grammar (it needs a segment), but the gateway's own console lives there.
        return PathTemplate(source, (), (), None, re.compile("/"))
    if source.count("{") != source.count("}"):
        raise TemplateError(f"unbalanced braces in path template {source!r}")
    body = source[1:]
    verb: str | None = None
    # The verb is the text after the last ':' that sits outside braces and after the last '/'.
    last = _split_top_level(body, "/")[-1]
    tail = _split_top_level(last, ":")
    if len(tail) > 2:
        raise TemplateError(f"more than one verb in path template {source!r}")
    if len(tail) == 2:
        verb = tail[1]
        if not verb or _LITERAL_FORBIDDEN.intersection(verb):
            raise TemplateError(f"invalid verb {verb!r} in path template {source!r}")
        body = body[: len(body) - len(verb) - 1]

    segments: list[Segment] = []
    variables: list[Variable] = []
    for raw in _split_top_level(body, "/"):
        if raw.startswith("{") and raw.endswith("}"):
            inner = raw[1:-1]
            if "{" in inner or "}" in inner:
                raise TemplateError(f"nested variable in path template {source!r}")
            field, has_pattern, pattern = inner.partition("=")
            names = tuple(field.split("."))
            if not all(_IDENT.match(name) for name in names):
                raise TemplateError(f"invalid field path {field!r} in path template {source!r}")
            if any(var.field_path == names for var in variables):
                raise TemplateError(f"field {field!r} bound twice in path template {source!r}")
            sub = [
                _plain_segment(part, source)
                for part in (pattern.split("/") if has_pattern else ["*"])
            ]
            variables.append(
                Variable(names, len(segments), len(segments) + len(sub), bool(has_pattern))
            )
            segments.extend(sub)
        elif "{" in raw or "}" in raw:
            raise TemplateError(f"a variable must fill a whole segment in path template {source!r}")
        else:
            segments.append(_plain_segment(raw, source))
    for index, segment in enumerate(segments):
        if segment.kind is SegmentKind.MULTI and index != len(segments) - 1:
            raise TemplateError(f"'**' must be the last segment of path template {source!r}")
    return PathTemplate(
        source=source,
        segments=tuple(segments),
        variables=tuple(variables),
        verb=verb,
        regex=_compile(segments, variables, verb),
    )


def _compile(
    segments: list[Segment], variables: list[Variable], verb: str | None
) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    by_start = {var.start: (i, var) for i, var in enumerate(variables)}
    while index < len(segments):
        if index in by_start:
            number, var = by_start[index]
            inner = "/".join(segment.pattern() for segment in segments[var.start : var.end])
            parts.append(f"(?P<v{number}>{inner})")
            index = var.end
        else:
            parts.append(segments[index].pattern())
            index += 1
    return re.compile("/" + "/".join(parts) + (":" + re.escape(verb) if verb else ""))
