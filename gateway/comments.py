"""Leading comments of the proto sources, for descriptions in ``/openapi.json``.

Generated ``*_pb2`` modules carry descriptors without source info, so code
generation also writes ``iot/descriptors.binpb``: a ``FileDescriptorSet`` with
source info, read here. Serving never compiles protos (grpcio-tools is a
build-time tool, not a runtime dependency). Without that file the spec simply
has no descriptions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib import resources

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

logger = logging.getLogger(__name__)

DESCRIPTORS = "descriptors.binpb"
"""The descriptor set that ``tools/gen_protos.py`` writes into the generated ``iot`` package."""

# Field numbers in descriptor.proto that lead from a container to its children.
_FILE_MESSAGES, _FILE_ENUMS, _FILE_SERVICES = 4, 5, 6
_MESSAGE_FIELDS, _MESSAGE_NESTED, _MESSAGE_ENUMS = 2, 3, 4
_ENUM_VALUES = 2
_SERVICE_METHODS = 2


def _enum_paths(
    enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = f"{scope}.{enum.name}"
    yield path, name
    for index, value in enumerate(enum.value):
        # Enum values live in the scope enclosing the enum, but are listed per enum here.
        yield (*path, _ENUM_VALUES, index), f"{name}.{value.name}"


def _message_paths(
    message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = f"{scope}.{message.name}"
    yield path, name
    for index, field in enumerate(message.field):
        yield (*path, _MESSAGE_FIELDS, index), f"{name}.{field.name}"
    for index, nested in enumerate(message.nested_type):
        yield from _message_paths(nested, (*path, _MESSAGE_NESTED, index), name)
    for index, enum in enumerate(message.enum_type):
        yield from _enum_paths(enum, (*path, _MESSAGE_ENUMS, index), name)


def _file_paths(file: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[tuple[int, ...], str]]:
    package = file.package
    for index, message in enumerate(file.message_type):
        yield from _message_paths(message, (_FILE_MESSAGES, index), package)
    for index, enum in enumerate(file.enum_type):
        yield from _enum_paths(enum, (_FILE_ENUMS, index), package)
    for index, service in enumerate(file.service):
        service_name = f"{package}.{service.name}"
        yield (_FILE_SERVICES, index), service_name
        for method_index, method in enumerate(service.method):
            yield (
                (_FILE_SERVICES, index, _SERVICE_METHODS, method_index),
                f"{service_name}.{method.name}",
            )


def comments_of(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading comment of every message, field, enum, value, service and method, by full name."""
    found: dict[str, str] = {}
    for file in files.file:
        names = dict(_file_paths(file))
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = location.leading_comments.strip()
            if name and text:
                found[name] = " ".join(line.strip() for line in text.splitlines())
    return found


def load_comments(package: str = "iot") -> dict[str, str]:
    """Comments of every generated proto, from ``package``'s descriptor set; empty without it."""
    try:
        raw = resources.files(package).joinpath(DESCRIPTORS).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        logger.warning("no %s in %s: /openapi.json has no descriptions", DESCRIPTORS, package)
        return {}
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except DecodeError:
        logger.warning(
            "%s in %s is unreadable: /openapi.json has no descriptions", DESCRIPTORS, package
        )
        return {}
    return comments_of(files)
