"""``/openapi.json``: an OpenAPI 3.1 document built from the same descriptors as the routes.

Schemas follow proto JSON as the gateway emits it: proto field names, 64-bit
integers as strings, enums by name, Timestamp as an RFC 3339 string. Every
answer is documented inside the envelope, except ``raw_response`` methods and
files (``google.api.HttpBody``), documented with the media types they have.

What a service accepts comes from the protos too: fields marked
``google.api.field_behavior`` REQUIRED are ``required``, and the
``(iot.common.v1.field_rules)`` of a field become its bounds, lengths, format,
pattern and enum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.discovery import HttpBinding, Presentation, RpcMethod
from gateway.fields import WRAPPERS, accepts_text, is_map, is_plain_message
from gateway.http_body import http_body_content, is_http_body
from gateway.routing import Route
from iot.common.v1 import options_pb2

_T = FieldDescriptor
OPENAPI_VERSION = "3.1.0"
SUCCESS_ENVELOPE = "iotsuite.Envelope"
ERROR_ENVELOPE = "iotsuite.ErrorEnvelope"
_MAX_QUERY_DEPTH = 3

# Digits only: "" or "1.5" is not a 64-bit integer. One digit fewer than the largest
# value has, so that every string matching is in range (a regex cannot say "at most
# 18446744073709551615" simply); the extremes are still accepted, just not promised.
_INT64 = r"^-?[0-9]{1,18}$"
_UINT64 = r"^[0-9]{1,19}$"
# Every service refuses text holding a NUL character (iot.common.v1.MethodRules).
_NO_NUL = r"^[^\u0000]*$"
# A character Python's str.strip() keeps: not one of str.isspace()'s. Spelled out, as "\S"
# differs between engines (Python's "\s" takes U+001C to U+001F, JavaScript's and Rust's
# do not; JavaScript's takes U+FEFF).
NOT_SPACE = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000]"
)

_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    # Proto JSON writes 64-bit integers as strings: JavaScript numbers cannot hold them.
    _T.TYPE_INT64: {"type": "string", "format": "int64", "pattern": _INT64},
    _T.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": _INT64},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": _INT64},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": _UINT64},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": _UINT64},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string", "pattern": _NO_NUL},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
}


def is_required(field: FieldDescriptor) -> bool:
    """True when the proto marks ``field`` ``(google.api.field_behavior) = REQUIRED``."""
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _rules(field: FieldDescriptor) -> options_pb2.FieldRules | None:
    options = field.GetOptions()
    if not options.HasExtension(options_pb2.field_rules):
        return None
    return options.Extensions[options_pb2.field_rules]


def _any_of(message: Descriptor) -> list[str]:
    """The fields of ``message`` of which one at least must be set (``MessageRules.any_of``)."""
    options = message.GetOptions()
    if not options.HasExtension(options_pb2.message_rules):
        return []
    return list(options.Extensions[options_pb2.message_rules].any_of)


# FieldRules fields that constrain one value, and their JSON Schema keywords.
_VALUE_KEYWORDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "min_length": "minLength",
    "max_length": "maxLength",
}


def _value_rules(rules: options_pb2.FieldRules) -> dict[str, Any]:
    keywords: dict[str, Any] = {
        keyword: getattr(rules, name)
        for name, keyword in _VALUE_KEYWORDS.items()
        if rules.HasField(name)
    }
    if rules.format:
        keywords["format"] = rules.format
    if rules.pattern:
        # Beside the NUL rule of every string: a schema has one "pattern", allOf takes more.
        keywords["allOf"] = [{"pattern": rules.pattern}]
    if rules.values:
        keywords["enum"] = list(rules.values)
    if rules.items_type:
        keywords["items"] = {"type": rules.items_type}
    return keywords


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes ``null``, which proto JSON reads as "not set"."""
    if "type" in schema and "$ref" not in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        widened = {**schema, "type": [*types, "null"] if "null" not in types else types}
        if "enum" in schema and None not in schema["enum"]:
            widened["enum"] = [*schema["enum"], None]
        return widened
    if not schema or schema.get("anyOf", [{}])[-1] == {"type": "null"}:
        return schema  # any JSON value (google.protobuf.Value), or already nullable
    inner = {key: value for key, value in schema.items() if key != "description"}
    widened = {"anyOf": [inner, {"type": "null"}]}
    if "description" in schema:
        widened["description"] = schema["description"]
    return widened


def check_string_bounds(
    field: FieldDescriptor, schema: dict[str, Any], rules: options_pb2.FieldRules
) -> None:
    """Refuse ``minimum``/``maximum`` on a field whose JSON is a string (a 64-bit integer):
    JSON Schema applies them to numbers only, so they would state nothing. Such a field's
    bounds are a ``pattern`` ("^[0-9]+$")."""
    if schema.get("type") == "string" and (rules.HasField("minimum") or rules.HasField("maximum")):
        raise ValueError(
            f"{field.full_name}: minimum and maximum have no effect on its JSON string; "
            "state its bounds with a pattern"
        )


def _array_rules(rules: options_pb2.FieldRules) -> dict[str, Any]:
    keywords: dict[str, Any] = {}
    if rules.HasField("min_items"):
        keywords["minItems"] = rules.min_items
    if rules.HasField("max_items"):
        keywords["maxItems"] = rules.max_items
    return keywords


class _Builder:
    """Collects component schemas while walking routes."""

    def __init__(self, comments: Mapping[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {}

    def ref(self, message: Descriptor) -> dict[str, Any]:
        """A reference to the schema of ``message`` (a well-known type is inlined)."""
        name = message.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name in WRAPPERS:
            inner = self.value_schema(message.fields_by_name["value"])
            return {**inner, "type": [inner["type"], "null"]}
        if name not in self.schemas:
            self.schemas[name] = {}  # Placeholder first: messages may refer to themselves.
            self.schemas[name] = self._message_schema(message)
        return {"$ref": f"#/components/schemas/{name}"}

    def body_ref(self, message: Descriptor, path_fields: frozenset[str]) -> dict[str, Any]:
        """The schema of ``message`` as a ``body: "*"`` request body: without ``path_fields``,
        which only the path sets (the gateway refuses a body that names them)."""
        if not path_fields:
            return self.ref(message)
        name = f"{message.full_name}.Body"
        if name not in self.schemas:
            self.schemas[name] = self._message_schema(message, skip=path_fields)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message_schema(
        self, message: Descriptor, skip: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            # A field may be null (not set), unless it is required: null is no value.
            "properties": {
                field.name: (
                    self.field_schema(field)
                    if is_required(field)
                    else nullable(self.field_schema(field))
                )
                for field in message.fields
                if field.name not in skip
            },
            "additionalProperties": False,
        }
        required = [f.name for f in message.fields if f.name not in skip and is_required(f)]
        if required:
            schema["required"] = required
        any_of = _any_of(message)
        if any_of:
            schema["anyOf"] = [
                {"required": [name], "properties": {name: {"type": "string", "pattern": NOT_SPACE}}}
                for name in any_of
            ]
        if message.full_name in self.comments:
            schema["description"] = self.comments[message.full_name]
        return schema

    def value_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of ``field`` (an element, for repeated fields)."""
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.type == _T.TYPE_ENUM:
            return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
        return dict(_SCALARS[field.type])

    def field_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of ``field`` as it appears in JSON, with its rules and comment."""
        rules = _rules(field)
        if is_map(field):
            value = field.message_type.fields_by_name["value"]
            schema = {"type": "object", "additionalProperties": self.value_schema(value)}
        elif field.is_repeated:
            items = self.value_schema(field)
            if rules is not None:
                items = {**items, **_value_rules(rules)}
            schema = {"type": "array", "items": items}
            if rules is not None:
                schema.update(_array_rules(rules))
        else:
            schema = self.value_schema(field)
            if rules is not None:
                check_string_bounds(field, schema, rules)
                schema = {**schema, **_value_rules(rules)}
        description = self.comments.get(field.full_name)
        if description:
            # Siblings of $ref are allowed in OpenAPI 3.1.
            schema = {**schema, "description": description}
        return schema


def _security(presentation: Presentation) -> list[dict[str, list[str]]]:
    """No token, an optional one (``{}`` first: anonymous is allowed), or a required one."""
    if presentation.token_optional:
        return [{}, {"bearerAuth": []}]
    return [] if presentation.public else [{"bearerAuth": []}]


def _query_parameters(
    builder: _Builder, message: Descriptor, skip: set[str], prefix: str = "", depth: int = 0
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for field in message.fields:
        name = prefix + field.name
        if name in skip or is_map(field):
            continue
        if accepts_text(field):
            schema = builder.field_schema(field)
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                # A nested field is required only of a message that is sent at all.
                "required": not prefix and is_required(field),
                "schema": schema,
            }
            if field.is_repeated:
                parameter["explode"] = True
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
        elif is_plain_message(field) and not field.is_repeated and depth < _MAX_QUERY_DEPTH:
            parameters += _query_parameters(
                builder, field.message_type, skip, f"{name}.", depth + 1
            )
    return parameters


def _parameters(builder: _Builder, method: RpcMethod, binding: HttpBinding) -> list[dict[str, Any]]:
    request = method.request_class.DESCRIPTOR
    parameters: list[dict[str, Any]] = []
    skip: set[str] = set()
    for variable in binding.template.variables:
        skip.add(variable.name)
        field = request
        leaf: FieldDescriptor | None = None
        for part in variable.field_path:
            leaf = field.fields_by_name[part]
            field = leaf.message_type
        assert leaf is not None
        parameter = {
            "name": variable.name,
            "in": "path",
            "required": True,
            "schema": builder.field_schema(leaf),
        }
        parameters.append(parameter)
    if binding.body != "*":
        if binding.body:
            skip.add(binding.body)
        if method.presentation.finish_field:
            skip.add(method.presentation.finish_field)  # the gateway's own, after the body
        parameters += _query_parameters(builder, request, skip)
    return parameters


def _request_body(
    builder: _Builder, method: RpcMethod, binding: HttpBinding
) -> dict[str, Any] | None:
    request = method.request_class.DESCRIPTOR
    if method.client_streaming:
        # A raw upload: the body is the bytes themselves, whatever their type.
        description = builder.comments.get(request.fields_by_name[binding.body].full_name, "")
        raw = {"type": "string", "format": "binary"}
        return {
            "required": True,
            "description": description or "The raw bytes",
            "content": {"application/octet-stream": {"schema": raw}, "*/*": {"schema": raw}},
        }
    required = True
    if binding.body == "*":
        # A nested path field ({device.id}) leaves its message in the schema, which cannot
        # say "all of it but one field" simply; no iot route binds one.
        path_fields = frozenset(
            var.name for var in binding.template.variables if len(var.field_path) == 1
        )
        schema = builder.body_ref(request, path_fields)
        # No body is the empty object: fine unless the request needs some field.
        required = bool(_any_of(request)) or any(
            is_required(field) for field in request.fields if field.name not in path_fields
        )
    elif binding.body:
        schema = builder.field_schema(request.fields_by_name[binding.body])
    else:
        return None
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _responses(builder: _Builder, method: RpcMethod, binding: HttpBinding) -> dict[str, Any]:
    response = method.response_class.DESCRIPTOR
    data = (
        builder.field_schema(response.fields_by_name[binding.response_body])
        if binding.response_body
        else builder.ref(response)
    )
    presentation = method.presentation
    if is_http_body(response):
        # A file, streamed or not: its bytes as they are, not events nor the envelope.
        content = http_body_content(presentation.content_types)
    elif method.server_streaming:
        content = {
            "text/event-stream": {
                "schema": {**data, "description": "Each event's data is one message"}
            }
        }
    elif presentation.raw_response:
        content = {"application/json": {"schema": data}}
    else:
        envelope = {
            "allOf": [
                {"$ref": f"#/components/schemas/{SUCCESS_ENVELOPE}"},
                {"type": "object", "properties": {"data": data}},
            ]
        }
        content = {"application/json": {"schema": envelope}}
    return {
        str(presentation.success_status): {
            "description": presentation.success_message,
            "content": content,
        },
        "default": {
            "description": "Failure envelope",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_ENVELOPE}"}}
            },
        },
    }


def _envelope_schemas() -> dict[str, Any]:
    common = {
        "http_status_code": {"type": "integer"},
        "success": {"type": "boolean"},
        "message": {"type": "string"},
    }
    return {
        SUCCESS_ENVELOPE: {
            "type": "object",
            "required": ["http_status_code", "success", "message", "data"],
            "properties": {**common, "data": {}},
        },
        ERROR_ENVELOPE: {
            "type": "object",
            "required": ["http_status_code", "success", "message", "data", "error"],
            "properties": {
                **common,
                "data": {
                    "type": "object",
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        }
                    },
                },
                "error": {
                    "type": "object",
                    "properties": {
                        "error_code": {"type": "string"},
                        "status": {"type": "integer"},
                        "error": {"type": "string"},
                        "path": {"type": "string"},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "details": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    }


def _operation(
    builder: _Builder, method: RpcMethod, binding: HttpBinding, index: int
) -> dict[str, Any]:
    service = method.descriptor.containing_service
    operation: dict[str, Any] = {
        "operationId": f"{service.name}_{method.descriptor.name}" + (f"_{index}" if index else ""),
        "tags": [service.name],
        "summary": method.descriptor.name,
        "parameters": _parameters(builder, method, binding),
        "responses": _responses(builder, method, binding),
        "security": _security(method.presentation),
    }
    description = builder.comments.get(method.descriptor.full_name)
    if description:
        operation["description"] = description
    body = _request_body(builder, method, binding)
    if body is not None:
        operation["requestBody"] = body
    return operation


def build_openapi(
    routes: Sequence[Route], *, comments: Mapping[str, str] | None = None, version: str = "1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the RPC routes in ``routes``, plus ``/healthz``."""
    builder = _Builder(comments or {})
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.rpc is None or route.binding is None:
            continue
        method, binding = route.rpc, route.binding
        index = method.bindings.index(binding)
        operation = _operation(builder, method, binding, index)
        paths.setdefault(route.template.openapi_path(), {})[route.verb.lower()] = operation
        service = method.descriptor.containing_service
        tag: dict[str, Any] = {"name": service.name}
        if service.full_name in builder.comments:
            tag["description"] = builder.comments[service.full_name]
        tags[service.name] = tag
    paths["/healthz"] = {
        "get": {
            "operationId": "Gateway_Healthz",
            "tags": ["Gateway"],
            "summary": "Gateway liveness (the gateway only, not the services)",
            "security": [],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{SUCCESS_ENVELOPE}"}
                        }
                    },
                }
            },
        }
    }
    schemas = dict(sorted(builder.schemas.items()))
    schemas.update(_envelope_schemas())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "iotsuite REST API",
            "version": version,
            "description": (
                "REST gateway to the iotsuite gRPC services. "
                "Every answer is wrapped in an envelope."
            ),
        },
        "tags": sorted(tags.values(), key=lambda tag: tag["name"]),
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearerAuth": []}],
    }
