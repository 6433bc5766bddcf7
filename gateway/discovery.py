"""Route discovery: every RPC with a ``google.api.http`` option becomes a REST route.

The generated ``*_pb2`` modules under the ``iot`` package are imported (which
registers their descriptors), then each service method's options are read:
the HTTP rule (verb, path template, body, additional bindings) and the
``(iot.common.v1.rules)`` presentation rules. Nothing here is per endpoint, so
adding an annotated RPC to a proto adds its route.

A client-streaming RPC is exposed only when its ``body`` names a singular
``bytes`` field: that is a raw upload, whose request body is streamed to it
as messages (see ``proxy``). Other client-streaming RPCs (and bidirectional
ones) stay gRPC-only, since a request body cannot be cut into messages.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import (
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message

from gateway.fields import accepts_text, find_field, resolve_path
from gateway.templates import PathTemplate, TemplateError, parse_template
from gateway.upstream import upstream_of
from iot.common.v1 import options_pb2

logger = logging.getLogger(__name__)

PROTO_PACKAGE = "iot"
"""The package holding the generated code of every iotsuite API."""

HTTP_VERBS = ("get", "put", "post", "delete", "patch")


class DiscoveryError(ValueError):
    """An HTTP annotation cannot be served as written; the proto must be fixed."""


@dataclass(frozen=True, slots=True)
class Presentation:
    """How the gateway answers a successful call (from ``MethodRules``)."""

    public: bool = False
    success_status: int = 200
    success_message: str = "OK"
    raw_response: bool = False
    message_field: str = ""
    """A string field of the response that, when not empty, replaces ``success_message``."""
    token_optional: bool = False
    """A public RPC that also takes a token when one is sent (the chat's sessions)."""
    content_types: tuple[str, ...] = ()
    """The media types of an ``HttpBody`` answer (any when empty), for the OpenAPI document."""
    finish_field: str = ""
    """A bool field of a raw upload's request set on a last message after the whole body."""


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One HTTP verb and path that reach an RPC."""

    verb: str
    template: PathTemplate
    body: str
    response_body: str


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """An RPC exposed over HTTP, with everything needed to call it generically."""

    descriptor: MethodDescriptor
    upstream: str
    request_class: type[Message]
    response_class: type[Message]
    presentation: Presentation
    bindings: tuple[HttpBinding, ...]

    @property
    def grpc_path(self) -> str:
        """The gRPC method path, ``/package.Service/Method``."""
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def server_streaming(self) -> bool:
        """True when the RPC answers a stream (served as Server-Sent Events)."""
        return bool(self.descriptor.server_streaming)

    @property
    def client_streaming(self) -> bool:
        """True when the RPC takes a stream: a raw upload of the request body."""
        return bool(self.descriptor.client_streaming)


def import_proto_modules(package: str = PROTO_PACKAGE) -> list[ModuleType]:
    """Import every generated ``*_pb2`` module under ``package``; answers them sorted by name."""
    root = importlib.import_module(package)
    modules = []
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith("_pb2"):
            modules.append(importlib.import_module(info.name))
    return sorted(modules, key=lambda module: module.__name__)


def proto_files(package: str = PROTO_PACKAGE) -> list[FileDescriptor]:
    """The file descriptors of every generated module under ``package``."""
    return [module.DESCRIPTOR for module in import_proto_modules(package)]


def _presentation(method: MethodDescriptor) -> Presentation:
    options = method.GetOptions()
    if not options.HasExtension(options_pb2.rules):
        return Presentation()
    rules = options.Extensions[options_pb2.rules]
    if rules.message_field:
        field = method.output_type.fields_by_name.get(rules.message_field)
        if field is None or field.type != FieldDescriptor.TYPE_STRING or field.is_repeated:
            raise DiscoveryError(
                f"{method.full_name}: message_field {rules.message_field!r} is not a string "
                f"field of {method.output_type.full_name}"
            )
    if rules.finish_field:
        field = method.input_type.fields_by_name.get(rules.finish_field)
        if (
            not method.client_streaming
            or field is None
            or field.type != FieldDescriptor.TYPE_BOOL
            or field.is_repeated
        ):
            raise DiscoveryError(
                f"{method.full_name}: finish_field {rules.finish_field!r} is not a bool "
                f"field of the streamed {method.input_type.full_name}"
            )
    return Presentation(
        public=rules.public,
        token_optional=rules.public and rules.token_optional,
        success_status=rules.success_status or 200,
        success_message=rules.success_message or "OK",
        raw_response=rules.raw_response,
        message_field=rules.message_field,
        content_types=tuple(rules.content_types),
        finish_field=rules.finish_field,
    )


def _binding(method: MethodDescriptor, rule: http_pb2.HttpRule) -> HttpBinding:
    where = f"{method.full_name}: "
    pattern = rule.WhichOneof("pattern")
    if pattern in HTTP_VERBS:
        verb, path = pattern.upper(), getattr(rule, pattern)
    elif pattern == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        raise DiscoveryError(where + "HTTP rule without a verb and path")
    try:
        template = parse_template(path)
    except TemplateError as exc:
        raise DiscoveryError(where + str(exc)) from exc

    request = method.input_type
    bound = set()
    for variable in template.variables:
        try:
            chain = resolve_path(request, variable.field_path)
        except KeyError as exc:
            raise DiscoveryError(
                f"{where}path variable names unknown field {exc.args[0]}"
            ) from None
        leaf = chain[-1]
        if leaf.is_repeated or not accepts_text(leaf):
            raise DiscoveryError(
                f"{where}path variable {variable.name} must bind a singular scalar field"
            )
        bound.add(variable.field_path[0])

    body = rule.body
    if body not in ("", "*"):
        field = find_field(request, body)
        if field is None or field.name != body:
            raise DiscoveryError(f"{where}body names unknown field {body}")
        if body in bound:
            raise DiscoveryError(f"{where}body field {body} is also bound by the path")
    if rule.response_body and method.output_type.fields_by_name.get(rule.response_body) is None:
        raise DiscoveryError(f"{where}response_body names unknown field {rule.response_body}")
    return HttpBinding(verb=verb, template=template, body=body, response_body=rule.response_body)


def _is_raw_upload(method: MethodDescriptor, rules: Iterable[http_pb2.HttpRule]) -> bool:
    """True for a client-streaming RPC whose every binding's body is one singular bytes field."""
    if method.server_streaming:
        return False
    for rule in rules:
        field = method.input_type.fields_by_name.get(rule.body)
        if field is None or field.is_repeated or field.type != FieldDescriptor.TYPE_BYTES:
            return False
    return True


def discover(
    files: Iterable[FileDescriptor],
    *,
    upstream: Callable[[ServiceDescriptor], str | None] = upstream_of,
) -> list[RpcMethod]:
    """Every HTTP-annotated RPC of ``files``; raises DiscoveryError for unservable annotations.

    ``upstream`` names the process (a key of ``Settings.addresses``) that serves a
    gRPC service; the default follows the ``iot.<process>.v1`` rule and the
    ``served_by`` option.
    """
    methods: list[RpcMethod] = []
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                rules = [rule, *rule.additional_bindings]
                if method.client_streaming and not _is_raw_upload(method, rules):
                    # Only a bytes body can be cut into messages; such RPCs stay gRPC-only.
                    logger.info("not exposing client-streaming RPC %s over HTTP", method.full_name)
                    continue
                target = upstream(service)
                if target is None:
                    raise DiscoveryError(
                        f"{method.full_name}: no upstream service for {service.full_name}"
                    )
                methods.append(
                    RpcMethod(
                        descriptor=method,
                        upstream=target,
                        request_class=message_factory.GetMessageClass(method.input_type),
                        response_class=message_factory.GetMessageClass(method.output_type),
                        presentation=_presentation(method),
                        bindings=tuple(_binding(method, item) for item in rules),
                    )
                )
    return methods
