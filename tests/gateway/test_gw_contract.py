"""The server keeps what ``/openapi.json`` says (finding 9), over real HTTP into real services.

Each test is one way the document and the server once disagreed: a body naming
a path field, exports documented as events, readings whose statistics
overflowed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from iot.common.v1 import options_pb2
from iot.telemetry.v1 import telemetry_pb2
from services.telemetry.telemetry import ingest
from tests.conftest import Backend, suite_with_gateway
from tests.support import rest_user


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with suite_with_gateway(backend) as (_, http):
        yield http


async def user_with_device(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    """A new user's authorization header and the id of a device they registered."""
    ann = await rest_user(client)
    created = await client.post(
        "/v1/devices", headers=ann, json={"name": "Boiler", "type": "temperature"}
    )
    return ann, str(created.json()["data"]["device_id"])


def operation(document: dict[str, Any], path: str, verb: str) -> dict[str, Any]:
    return dict(document["paths"][path][verb])


async def test_a_body_naming_a_path_field_is_refused_and_the_schema_leaves_it_out(
    client: httpx.AsyncClient,
) -> None:
    ann, device_id = await user_with_device(client)
    # Once accepted (the path won silently), whatever the body said.
    for sent in (False, device_id, "0b6e4c1e-3f0c-4f7e-9a55-3b1f1c2d4e5f"):
        answer = await client.patch(
            f"/v1/devices/{device_id}", headers=ann, json={"device_id": sent, "name": "Kiln"}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["data"]["errors"] == [
            {"field": "device_id", "message": "Is set by the path, not by the body"}
        ]
    kept = await client.get(f"/v1/devices/{device_id}", headers=ann)
    assert kept.json()["data"]["name"] == "Boiler"
    renamed = await client.patch(f"/v1/devices/{device_id}", headers=ann, json={"name": "Kiln"})
    assert renamed.status_code == 200 and renamed.json()["data"]["name"] == "Kiln"

    document = (await client.get("/openapi.json")).json()
    body = operation(document, "/v1/devices/{device_id}", "patch")["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "device_id" not in schema["properties"] and "name" in schema["properties"]
    assert schema["additionalProperties"] is False


async def test_exports_answer_the_content_types_the_document_gives(
    client: httpx.AsyncClient,
) -> None:
    ann = await rest_user(client)
    document = (await client.get("/openapi.json")).json()
    for path in ("/v1/anomalies/export", "/v1/correlations/export"):
        content = operation(document, path, "get")["responses"]["200"]["content"]
        # Once "text/event-stream", which these never answer.
        assert set(content) == {"text/csv", "application/json"}, path
        for fmt, media in (("csv", "text/csv"), ("json", "application/json")):
            answer = await client.get(path, headers=ann, params={"format": fmt})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].split(";")[0] == media
            assert media in content
    downloads = operation(document, "/v1/downloads/{export_id}/{file_name}", "get")
    assert set(downloads["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/xml",
        "application/zip",
    }


async def test_readings_beyond_the_bound_are_refused_and_statistics_stay_numbers(
    client: httpx.AsyncClient,
) -> None:
    ann, device_id = await user_with_device(client)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def readings(values: list[float]) -> list[dict[str, object]]:
        return [
            {"timestamp": (start + timedelta(seconds=i)).isoformat(), "value": value}
            for i, value in enumerate(values)
        ]

    url = f"/v1/devices/{device_id}/readings"
    # Once stored, after which the range's stddev was "Infinity" and z-scores "NaN".
    huge = await client.post(
        url, headers=ann, json={"metric_name": "heat", "readings": readings([1.79e308, -1.79e308])}
    )
    assert huge.status_code == 400, huge.text
    assert huge.json()["data"]["errors"] == [
        {
            "field": "readings.value",
            "message": "2 of 2 readings: values must be within ±1e+150 (VALUE_OUT_OF_RANGE)",
        }
    ]
    edge = [1e150, -1e150, 1e150, -1e150]
    stored = await client.post(
        url, headers=ann, json={"metric_name": "heat", "readings": readings(edge)}
    )
    assert stored.status_code == 200, stored.text
    stream_id = stored.json()["data"]["stream_ids"][0]
    data = await client.get(
        f"/v1/streams/{stream_id}/data",
        headers=ann,
        params={"start": start.isoformat(), "normalization": "z_score"},
    )
    assert data.status_code == 200, data.text
    body = data.json()["data"]
    assert all(isinstance(value, int | float) for value in body["stats"].values())
    assert (body["stats"]["mean"], body["stats"]["stddev"]) == (0, 1e150)
    assert [point["normalized_value"] for point in body["data"]] == [1.0, -1.0, 1.0, -1.0]

    document = (await client.get("/openapi.json")).json()
    value = document["components"]["schemas"]["iot.telemetry.v1.Reading"]["properties"]["value"]
    assert (value["minimum"], value["maximum"]) == (-1e150, 1e150)


def test_the_documented_bound_of_readings_is_the_one_telemetry_applies() -> None:
    # The bound lives in ingest.MAX_MAGNITUDE; the protos repeat it for the document.
    for field in (
        telemetry_pb2.Reading.DESCRIPTOR.fields_by_name["value"],
        telemetry_pb2.StreamReadings.DESCRIPTOR.fields_by_name["values"],
    ):
        rules = field.GetOptions().Extensions[options_pb2.field_rules]
        assert (rules.minimum, rules.maximum) == (-ingest.MAX_MAGNITUDE, ingest.MAX_MAGNITUDE)
