"""Reason codes: constants in ``iotkit.reasons``, used by every raise, listed in the proto comments.

The comments come from the descriptor set that code generation writes (the
one the gateway reads for ``/openapi.json``), so a reason a client can get is
documented where the API is.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from gateway.comments import DESCRIPTORS, comments_of, load_comments
from iotkit import reasons

ROOT = Path(__file__).resolve().parents[2]
KIT_WIDE = "iot.common.v1.MethodRules"
# API folders whose proto is not named after them.
PROTO_OF = {"auth/core": "iot/auth/v1/auth.proto", "auth/system": "iot/system/v1/system.proto"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", text))


def _descriptor_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    raw = resources.files("iot").joinpath(DESCRIPTORS).read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(raw)
    return {file.name: file for file in files.file}


def _api_folders() -> list[Path]:
    return sorted(
        folder for folder in (ROOT / "services").glob("*/*") if (folder / "servicer.py").exists()
    )


def test_every_reason_is_in_some_proto_comment() -> None:
    documented = _words(" ".join(load_comments().values()))
    assert reasons.all_reasons() - documented == set()


def test_the_kit_wide_reasons_are_listed_once_for_every_rpc() -> None:
    kit_wide = _words(load_comments()[KIT_WIDE])
    for reason in (
        reasons.UNAUTHENTICATED,
        reasons.MISSING_SCOPE,
        reasons.VALIDATION_FAILED,
        reasons.RATE_LIMITED,
        reasons.SERVICE_UNAVAILABLE,
        reasons.INTERNAL,
    ):
        assert reason in kit_wide


@pytest.mark.parametrize("folder", _api_folders(), ids=lambda folder: folder.name)
def test_each_api_lists_the_reasons_its_code_raises(folder: Path) -> None:
    api = f"{folder.parent.name}/{folder.name}"
    proto = PROTO_OF.get(api, f"iot/{folder.parent.name}/v1/{folder.name}.proto")
    files = _descriptor_files()
    documented = _words(
        " ".join(comments_of(descriptor_pb2.FileDescriptorSet(file=[files[proto]])).values())
    )
    documented |= _words(load_comments()[KIT_WIDE])
    used = {
        name
        for source in folder.glob("*.py")
        for name in re.findall(r"\breasons\.([A-Z][A-Z0-9_]+)", source.read_text())
    }
    assert used - documented == set(), f"{proto} does not list them"


def test_raises_use_the_constants_not_literals() -> None:
    literal = re.compile(r"""reason\s*=\s*["'][A-Z][A-Z0-9_]+["']""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for top in ("iotkit", "services")
        for path in (ROOT / top).rglob("*.py")
        if path.name != "reasons.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == []


def test_every_constant_names_itself() -> None:
    for name in dir(reasons):
        value = getattr(reasons, name)
        if name.isupper() and isinstance(value, str):
            assert value == name
