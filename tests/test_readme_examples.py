"""The README's example requests name real routes and send fields those routes accept.

Every ``curl`` with a JSON body in the README's shell blocks is matched to the
RPC its method and path reach (from the same ``google.api.http`` annotations
the gateway serves), and its body is parsed into that RPC's request message
the way the gateway parses it: an unknown or mistyped field fails here
before it fails a newcomer. Shell variables stand for ids and times.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format

from gateway.discovery import RpcMethod, discover, proto_files

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ID = "7b0e3f5c-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
SAMPLE_TIME = "2026-11-30T12:00:00Z"

EXPECTED = {
    ("POST", "RegisterDevice"),
    ("PATCH", "UpdateDevice"),
    ("POST", "CreateBatch"),
    ("POST", "CreateUpload"),
    ("PATCH", "ReviewAnomaly"),
    ("POST", "CreateCorrelation"),
}
"""Requests with a body that the README must show (the issue: a newcomer had to read
the OpenAPI to learn a device's field is ``type``)."""


@dataclass(frozen=True)
class Example:
    """One ``curl`` of the README with a JSON body."""

    method: str
    path: str
    body: str


def shell_blocks(text: str) -> list[str]:
    """The ``sh`` code blocks of a Markdown text, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [block.replace("\\\n", " ") for block in blocks]


def substituted(text: str) -> str:
    """Shell expansions replaced by sample values: ``$(...)`` by a time, ``$VAR`` by an id."""
    text = re.sub(r"\$\([^()]*(\([^()]*\)[^()]*)*\)", SAMPLE_TIME, text)
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", SAMPLE_ID, text)


def examples(text: str) -> list[Example]:
    """Every ``curl`` with an inline JSON body (``-d '...'`` or ``-d "..."``)."""
    found = []
    for block in shell_blocks(text):
        for command in re.findall(r"(?<![\w-])curl\b[^\n]*", block):
            body = re.search(r"""-d (?:'(\{.*?\})'|"(\{.*?\})")(?:\s|$)""", command)
            if body is None:
                continue
            raw = body[1] if body[1] is not None else body[2].replace('\\"', '"')
            method = re.search(r"-X (\w+)", command)
            url = re.search(r"\$GW(/\S*?)['\"]?(?:\s|$)", command)
            assert url is not None, f"no $GW URL in: {command}"
            found.append(
                Example(
                    method=method[1] if method else "POST",
                    path=substituted(url[1]).split("?")[0],
                    body=substituted(raw),
                )
            )
    return found


def rpc_of(methods: list[RpcMethod], example: Example) -> RpcMethod:
    """The RPC that the example's method and path reach."""
    for method in methods:
        for binding in method.bindings:
            bound = binding.template.match(example.path)
            if binding.verb.upper() == example.method and bound is not None:
                return method
    raise AssertionError(f"no route for {example.method} {example.path}")


README_EXAMPLES = examples((ROOT / "README.md").read_text())


def test_the_readme_shows_requests_for_devices_telemetry_imports_and_analytics() -> None:
    methods = discover(proto_files())
    shown = {(e.method, rpc_of(methods, e).descriptor.name) for e in README_EXAMPLES}
    assert EXPECTED - shown == set()


@pytest.mark.parametrize("example", README_EXAMPLES, ids=lambda e: f"{e.method} {e.path}")
def test_each_example_body_parses_into_its_request(example: Example) -> None:
    method = rpc_of(discover(proto_files()), example)
    payload = json.loads(example.body)
    assert isinstance(payload, dict)
    # Path variables are not in the body; the gateway fills them from the path.
    json_format.ParseDict(payload, method.request_class(), ignore_unknown_fields=False)


def test_a_wrong_field_is_caught() -> None:
    # The check above must be able to fail: the field a newcomer guessed wrong.
    wrong = examples(
        """```sh
curl -s -X POST $GW/v1/devices -H "$AUTH" -d '{"name": "x", "device_type": "temperature"}'
```"""
    )
    method = rpc_of(discover(proto_files()), wrong[0])
    with pytest.raises(json_format.ParseError, match="device_type"):
        json_format.ParseDict(json.loads(wrong[0].body), method.request_class())
