"""HTTP -> proto translation: path variables, query parameters and bodies, and their 400s."""

from __future__ import annotations

import logging

import httpx
import pytest
from gw_support import Fakes

JSON_TYPE = {"content-type": "application/json"}


def violations(response: httpx.Response) -> list[dict[str, str]]:
    body = response.json()
    assert body["success"] is False
    assert body["http_status_code"] == response.status_code
    return list(body["data"]["errors"])


async def test_path_and_query_parameters_are_converted_to_field_types(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get(
        "/v1/things/dev%2F42",
        params=[
            ("limit", "-7"),
            ("page", "3"),
            ("big", "9007199254740993"),
            ("ratio", "0.25"),
            ("flag", "1"),
            ("kind", "KIND_SENSOR"),
            ("tags", "a"),
            ("tags", "b"),
            ("nums", "1"),
            ("nums", "2"),
            ("location.latitude", "48.5"),
            ("location.label", "lab"),
            ("since", "2026-01-02T03:04:05Z"),
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Thing found"
    request, _ = fakes.recorder.last("GetThing")
    # %2F stays inside the one path segment it encodes.
    assert request.thing_id == "dev/42"
    assert request.limit == -7
    assert request.page == 3
    assert request.big == 9007199254740993
    assert request.ratio == 0.25
    assert request.flag is True
    assert request.kind == 1
    assert list(request.tags) == ["a", "b"]
    assert list(request.nums) == [1, 2]
    assert request.location.latitude == 48.5
    assert request.location.label == "lab"
    assert request.since.seconds == 1767323045
    data = body["data"]
    # Proto JSON answers: 64-bit integers as strings, enums by name, defaults present.
    assert data["big"] == "9007199254740993"
    assert data["kind"] == "KIND_SENSOR"
    assert data["since"] == "2026-01-02T03:04:05Z"
    assert data["password"] == ""
    assert data["places"] == []


async def test_bool_and_enum_query_values_accept_the_usual_spellings(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get("/v1/things/x", params={"flag": "false", "kind": "kind_actuator"})
    assert response.status_code == 200
    request, _ = fakes.recorder.last("GetThing")
    assert request.flag is False
    assert request.kind == 2
    response = await client.get("/v1/things/x", params={"flag": "TRUE", "kind": "1"})
    assert response.status_code == 200
    request, _ = fakes.recorder.last("GetThing")
    assert request.flag is True
    assert request.kind == 1


async def test_additional_bindings_reach_the_same_rpc(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get("/v1/legacy/things/old-1")
    assert response.status_code == 200
    request, _ = fakes.recorder.last("GetThing")
    assert request.thing_id == "old-1"


async def test_a_literal_segment_wins_over_a_variable(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get("/v1/things/favourite")
    assert response.status_code == 200
    assert response.json()["data"]["thing_id"] == "fav"
    fakes.recorder.last("GetFavourite")


async def test_a_nested_field_is_bound_by_a_multi_segment_pattern(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.get("/v1/sites/lab-3/things", params={"limit": "2"})
    assert response.status_code == 200
    request, _ = fakes.recorder.last("ListSiteThings")
    assert request.location.label == "sites/lab-3"
    assert request.limit == 2


async def test_body_field_binding_puts_the_json_into_that_field(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.patch(
        "/v1/things/t-9", json={"limit": 5, "tags": ["x"], "extra": {"a": [1, "b"]}}
    )
    assert response.status_code == 200, response.text
    request, _ = fakes.recorder.last("UpdateThing")
    assert request.thing_id == "t-9"
    assert request.thing.limit == 5
    assert list(request.thing.tags) == ["x"]
    assert response.json()["data"]["extra"] == {"a": [1, "b"]}


async def test_custom_verb_with_whole_body_and_success_status(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    response = await client.post(
        "/v1/things:import",
        json={"things": [{"thing_id": "a"}, {"thingId": "b"}], "strict": True},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["message"] == "Import accepted"
    assert body["data"] == {"imported": 2, "total_bytes": str(2**40)}
    request, _ = fakes.recorder.last("ImportThings")
    assert [thing.thing_id for thing in request.things] == ["a", "b"]
    assert request.strict is True


async def test_an_empty_body_is_an_empty_object(client: httpx.AsyncClient, fakes: Fakes) -> None:
    response = await client.post("/v1/things:import")
    assert response.status_code == 202
    request, _ = fakes.recorder.last("ImportThings")
    assert len(request.things) == 0


async def test_delete_without_body(client: httpx.AsyncClient, fakes: Fakes) -> None:
    response = await client.delete("/v1/things/gone")
    assert response.status_code == 200
    request, _ = fakes.recorder.last("DeleteThing")
    assert request.thing_id == "gone"


async def test_response_body_answers_one_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/things/t/location")
    assert response.status_code == 200
    assert response.json()["data"] == {"latitude": 1.5, "longitude": 0.0, "label": "sites/lab"}


async def test_malformed_json_is_invalid_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/register",
        content=b'{"email": "a@b.c",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["error_code"] == "INVALID_JSON"
    assert body["data"]["errors"] == []


async def test_json_that_is_not_an_object_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/register", json=["email"])
    assert response.status_code == 400
    assert response.json()["message"] == "Request body must be a JSON object"


async def test_an_unknown_body_field_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/register", json={"email": "a@b.c", "password": "x", "admin": True}
    )
    assert response.status_code == 400
    assert violations(response) == [{"field": "admin", "message": "Unknown field"}]


async def test_a_wrong_type_names_the_field_without_echoing_the_value(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/auth/login", json={"email": "a@b.c", "password": ["hunter2-super-secret"]}
    )
    assert response.status_code == 400
    assert violations(response) == [{"field": "password", "message": "Must be a string"}]
    assert "hunter2" not in response.text

    huge = "9" * 50_000
    response = await client.post("/v1/things:import", json={"strict": huge})
    assert response.status_code == 400
    assert violations(response) == [{"field": "strict", "message": "Must be true or false"}]
    assert len(response.content) < 2_000


async def test_nested_type_errors_give_the_full_field_path(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/things:import",
        json={"things": [{"thing_id": "ok"}, {"location": {"latitude": "north"}}]},
    )
    assert response.status_code == 400
    assert violations(response) == [
        {"field": "things[1].location.latitude", "message": "Must be a number"}
    ]
    # true and false once set number fields to 1 and 0 (and a string field to "True").
    for thing, field, message in (
        ({"location": {"latitude": False}}, "things[0].location.latitude", "Must be a number"),
        ({"limit": True}, "things[0].limit", "Must be an integer from -2147483648 to 2147483647"),
        (
            {"nums": [1, True]},
            "things[0].nums[1]",
            "Must be an integer from -2147483648 to 2147483647",
        ),
        ({"thing_id": False}, "things[0].thing_id", "Must be a string"),
        (
            {"kind": True},
            "things[0].kind",
            "Must be one of KIND_UNSPECIFIED, KIND_SENSOR, KIND_ACTUATOR",
        ),
    ):
        response = await client.post("/v1/things:import", json={"things": [thing]})
        assert violations(response) == [{"field": field, "message": message}], thing
    response = await client.post("/v1/things:import", json={"things": [{"flag": True}]})
    assert response.status_code == 202
    response = await client.post("/v1/things:import", json={"things": [{"limit": 2**40}]})
    assert violations(response) == [
        {
            "field": "things[0].limit",
            "message": "Must be an integer from -2147483648 to 2147483647",
        }
    ]
    response = await client.post("/v1/things:import", json={"things": [{"bogus": 1}]})
    assert violations(response) == [{"field": "things[0].bogus", "message": "Unknown field"}]
    response = await client.post("/v1/things:import", json={"things": {"thing_id": "x"}})
    assert violations(response) == [
        {"field": "things", "message": "Must be an array of JSON objects"}
    ]


async def test_bad_query_and_path_values_are_400s_naming_the_parameter(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/things/x", params={"limit": "ten"})
    assert response.status_code == 400
    assert violations(response) == [
        {"field": "limit", "message": "Must be an integer from -2147483648 to 2147483647"}
    ]
    response = await client.get("/v1/things/x", params={"page": "-1"})
    assert violations(response)[0]["field"] == "page"
    response = await client.get("/v1/things/x", params={"flag": "yes"})
    assert violations(response) == [{"field": "flag", "message": "Must be true or false"}]
    response = await client.get("/v1/things/x", params={"kind": "KIND_ROBOT"})
    assert violations(response) == [
        {"field": "kind", "message": "Must be one of KIND_UNSPECIFIED, KIND_SENSOR, KIND_ACTUATOR"}
    ]
    response = await client.get("/v1/things/x", params={"since": "yesterday"})
    assert response.status_code == 400
    assert violations(response)[0]["field"] == "since"
    response = await client.get("/v1/things/x", params={"nope": "1"})
    assert violations(response) == [{"field": "nope", "message": "Unknown field"}]
    response = await client.get("/v1/things/x", params={"location": "here"})
    assert violations(response) == [
        {"field": "location", "message": "Cannot be set from a query parameter"}
    ]
    response = await client.get("/v1/things/x", params=[("limit", "1"), ("limit", "2")])
    assert violations(response) == [{"field": "limit", "message": "Given more than once"}]
    response = await client.get("/v1/things/x", params={"thing_id": "other"})
    assert violations(response)[0]["field"] == "thing_id"


async def test_query_parameters_are_refused_where_the_body_holds_every_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/auth/register?email=a@b.c", json={})
    assert response.status_code == 400
    assert violations(response)[0]["field"] == "email"


async def test_a_non_json_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", content=b"email=a", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["error_code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_a_body_over_10_mib_is_413(client: httpx.AsyncClient, fakes: Fakes) -> None:
    big = b'{"email": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/v1/auth/register", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["error_code"] == "PAYLOAD_TOO_LARGE"
    assert all(name != "Register" for name, _, _ in fakes.recorder.calls)


async def test_a_chunked_body_over_the_limit_is_413_too(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(11):
            yield b" " * (1024 * 1024)

    response = await client.post(
        "/v1/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_deeply_nested_json_is_a_400_not_a_crash(client: httpx.AsyncClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    response = await client.post(
        "/v1/things/x",
        content=('{"extra": {"a": ' + deep + "}}").encode(),
        headers={"content-type": "application/json"},
    )
    # PATCH is the body route; POST on this path is not allowed.
    assert response.status_code == 405
    response = await client.patch(
        "/v1/things/x",
        content=('{"extra": {"a": ' + deep + "}}").encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_a_number_of_more_digits_than_python_reads_is_invalid_json(
    client: httpx.AsyncClient, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    # int() refuses over 4300 digits with a ValueError that once escaped as a 500.
    long_number = "1" * 4301
    for body in (
        '{"email": "a@b.co", "password": ' + long_number + "}",
        '{"things": [{"nums": [1, ' + long_number + "]}]}",
    ):
        path = "/v1/auth/login" if "email" in body else "/v1/things:import"
        with caplog.at_level(logging.ERROR):
            response = await client.post(path, content=body.encode(), headers=JSON_TYPE)
        assert response.status_code == 400, body[:40]
        assert response.json()["error"]["error_code"] == "INVALID_JSON"
        assert "digits" in response.json()["message"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(name not in ("Login", "ImportThings") for name, _, _ in fakes.recorder.calls)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_tokens_are_invalid_json(
    client: httpx.AsyncClient, fakes: Fakes, token: str
) -> None:
    # Python's json reads them; JSON has no such tokens, and a Struct holding one cannot be
    # written back as JSON (the service failed with a 500).
    for method, path, body in (
        ("PATCH", "/v1/profile", '{"metadata": {"a": %s}}'),
        ("PATCH", "/v1/profile", '{"tags": [%s]}'),
        ("POST", "/v1/things:import", '{"things": [{"ratio": %s}]}'),
    ):
        response = await client.request(
            method, path, content=(body % token).encode(), headers=JSON_TYPE
        )
        assert response.status_code == 400, (path, body)
        assert response.json()["error"]["error_code"] == "INVALID_JSON"
        assert token in response.json()["message"]
    assert all(name != "ImportThings" for name, _, _ in fakes.recorder.calls)


async def test_quoted_nan_and_infinity_still_set_a_double(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    # protobuf's JSON mapping spells them as strings: those are JSON, and stay accepted.
    response = await client.post(
        "/v1/things:import",
        json={"things": [{"ratio": "NaN"}, {"ratio": "Infinity"}, {"ratio": "-Infinity"}]},
    )
    assert response.status_code == 202
    request, _ = fakes.recorder.last("ImportThings")
    ratios = [thing.ratio for thing in request.things]
    assert ratios[0] != ratios[0] and ratios[1:] == [float("inf"), float("-inf")]


async def test_numbers_too_large_for_a_double_are_refused_naming_the_field(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    # 1e309 is read as infinity, which a Struct took and the service could not write back
    # as JSON (a 500); an integer past the largest double made json_format raise
    # OverflowError (a 500 without login).
    too_large = "Holds a number too large to store (the largest is about 1.8e308)"
    long_number = "9" * 400
    for method, path, body, field in (
        ("PATCH", "/v1/profile", '{"metadata": {"a": 1e309}}', "metadata"),
        ("PATCH", "/v1/profile", '{"metadata": {"a": {"b": [-1e400]}}}', "metadata"),
        ("PATCH", "/v1/profile", '{"metadata": {"a": LONG}}', "metadata"),
        ("PATCH", "/v1/profile", '{"tags": ["a", LONG]}', "tags"),
        ("PATCH", "/v1/things/x", '{"extra": {"a": [1e309]}}', "thing.extra"),
        ("POST", "/v1/things:import", '{"things": [{"ratio": 1e309}]}', "things[0].ratio"),
        (
            "POST",
            "/v1/things:import",
            '{"things": [{}, {"location": {"latitude": -LONG}}]}',
            "things[1].location.latitude",
        ),
    ):
        content = body.replace("LONG", long_number).encode()
        response = await client.request(method, path, content=content, headers=JSON_TYPE)
        assert response.status_code == 400, body
        assert violations(response) == [{"field": field, "message": too_large}], body
    assert all(name not in ("UpdateThing", "ImportThings") for name, _, _ in fakes.recorder.calls)
    # The largest double itself, and integers a double holds, still pass.
    response = await client.patch(
        "/v1/things/x", json={"extra": {"a": 1.7976931348623157e308, "b": 2**80}}
    )
    assert response.status_code == 200


async def test_a_field_given_by_both_its_names_is_named(
    client: httpx.AsyncClient, fakes: Fakes
) -> None:
    # json_format kept one of them in silence, or (for an optional field) failed naming none.
    twice = "Given twice, as display_name and displayName"
    response = await client.patch("/v1/profile", json={"display_name": "x", "displayName": "y"})
    assert response.status_code == 400
    assert violations(response) == [{"field": "display_name", "message": twice}]
    response = await client.patch("/v1/profile", json={"displayName": None, "display_name": "x"})
    assert violations(response) == [{"field": "display_name", "message": twice}]
    response = await client.post(
        "/v1/things:import", json={"things": [{"thing_id": "a", "thingId": "b"}]}
    )
    assert violations(response) == [
        {"field": "things[0].thing_id", "message": "Given twice, as thing_id and thingId"}
    ]
    assert all(name != "ImportThings" for name, _, _ in fakes.recorder.calls)


async def test_free_form_json_too_deep_or_not_unicode_says_so(client: httpx.AsyncClient) -> None:
    deep = '{"a": ' * 100 + "1" + "}" * 100
    response = await client.patch(
        "/v1/profile", content=('{"metadata": ' + deep + "}").encode(), headers=JSON_TYPE
    )
    assert response.status_code == 400
    assert violations(response) == [{"field": "metadata", "message": "Is nested too deeply"}]
    not_unicode = "Holds text that is not valid Unicode (an unpaired surrogate)"
    for body, field in (
        (b'{"display_name": "\\ud800"}', "display_name"),
        (b'{"metadata": {"a": {"b": "x\\udfff"}}}', "metadata"),
        (b'{"tags": ["\\ud800"]}', "tags"),
    ):
        response = await client.patch("/v1/profile", content=body, headers=JSON_TYPE)
        assert violations(response) == [{"field": field, "message": not_unicode}], body
