"""The ``google.api.http`` path template parser and matcher."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.templates import PathTemplate, TemplateError, parse_template


def test_a_single_variable_binds_one_segment() -> None:
    template = parse_template("/v1/devices/{device_id}")
    assert [v.name for v in template.variables] == ["device_id"]
    assert template.match("/v1/devices/abc") == {"device_id": "abc"}
    assert template.match("/v1/devices/abc/readings") is None
    assert template.match("/v1/devices/") is None
    assert template.match("/v1/devices") is None


def test_a_pattern_binds_several_segments_to_one_field() -> None:
    template = parse_template("/v1/{name=projects/*/devices/*}")
    assert template.match("/v1/projects/p1/devices/d9") == {"name": "projects/p1/devices/d9"}
    assert template.match("/v1/projects/p1/sensors/d9") is None
    assert template.openapi_path() == "/v1/{name}"


def test_dotted_field_paths_name_nested_fields() -> None:
    template = parse_template("/v1/{location.label=sites/*}/things")
    (variable,) = template.variables
    assert variable.field_path == ("location", "label")
    assert template.match("/v1/sites/lab/things") == {"location.label": "sites/lab"}


def test_double_wildcard_takes_the_rest_of_the_path() -> None:
    template = parse_template("/v1/files/{path=**}")
    assert template.match("/v1/files/a/b/c.csv") == {"path": "a/b/c.csv"}
    assert template.match("/v1/files/") is None


def test_custom_verbs() -> None:
    template = parse_template("/v1/devices:import")
    assert template.verb == "import"
    assert template.match("/v1/devices:import") == {}
    assert template.match("/v1/devices") is None
    with_variable = parse_template("/v1/devices/{id}:activate")
    assert with_variable.match("/v1/devices/d-1:activate") == {"id": "d-1"}
    assert with_variable.match("/v1/devices/d-1") is None
    assert with_variable.openapi_path() == "/v1/devices/{id}:activate"


def test_literal_paths_with_dots() -> None:
    template = parse_template("/.well-known/jwks.json")
    assert template.variables == ()
    assert template.match("/.well-known/jwks.json") == {}
    assert template.match("/.well-known/jwksXjson") is None


def test_values_are_percent_decoded_after_matching() -> None:
    template = parse_template("/v1/devices/{id}")
    assert template.match("/v1/devices/a%20b") == {"id": "a b"}
    # An encoded slash does not split the segment.
    assert template.match("/v1/devices/a%2Fb") == {"id": "a/b"}
    assert template.match("/v1/devices/caf%C3%A9") == {"id": "café"}


@pytest.mark.parametrize(
    "source",
    [
        "v1/things",
        "/v1//things",
        "/v1/{id",
        "/v1/{id}}",
        "/v1/{1id}",
        "/v1/{a.}",
        "/v1/**/x",
        "/v1/{a}/{a}",
        "/v1/x{a}",
        "/v1/a:b:c",
        "/v1/x:",
        "/v1/{a={b}}",
        "/v1/a=b",
        "",
    ],
)
def test_malformed_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(source)


def test_more_specific_templates_sort_first() -> None:
    sources = ["/v1/things/{id}", "/v1/things/favourite", "/v1/things:import", "/v1/{p=**}"]
    ordered = sorted((parse_template(s) for s in sources), key=PathTemplate.specificity)
    assert [t.source for t in ordered] == [
        "/v1/things:import",
        "/v1/things/favourite",
        "/v1/things/{id}",
        "/v1/{p=**}",
    ]


IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
LITERAL = st.from_regex(r"[A-Za-z0-9._~-]{1,10}", fullmatch=True)
VALUE = st.text(min_size=1, max_size=12)


@st.composite
def template_and_values(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    """A template of literals and variables, a path for it, and the values that path binds."""
    count = draw(st.integers(min_value=1, max_value=6))
    names = draw(st.lists(IDENT, min_size=count, max_size=count, unique=True))
    pieces: list[str] = []
    path: list[str] = []
    values: dict[str, str] = {}
    for name in names:
        if draw(st.booleans()):
            literal = draw(LITERAL)
            pieces.append(literal)
            path.append(literal)
        else:
            value = draw(VALUE)
            pieces.append("{" + name + "}")
            path.append(quote(value, safe=""))
            values[name] = value
    verb = draw(st.one_of(st.none(), LITERAL))
    suffix = f":{verb}" if verb else ""
    return "/" + "/".join(pieces) + suffix, "/" + "/".join(path) + suffix, values


@settings(database=None)
@given(template_and_values())
def test_any_value_encoded_into_a_path_is_bound_back(case: tuple[str, str, dict[str, str]]) -> None:
    source, path, values = case
    template = parse_template(source)
    assert template.match(path) == values
    # Without patterns, the OpenAPI path is the template itself.
    assert template.openapi_path() == source


@settings(database=None)
@given(template_and_values(), st.sampled_from(["/extra", "x", "/"]))
def test_a_longer_path_never_matches(case: tuple[str, str, dict[str, str]], tail: str) -> None:
    source, path, _ = case
    template = parse_template(source)
    if template.verb:
        # A tail after the verb is not the verb any more.
        assert template.match(path + tail) is None
    else:
        assert template.match(path + "/" + tail.strip("/") + "/") is None
