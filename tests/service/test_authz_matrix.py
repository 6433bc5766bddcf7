"""The authorization matrix, checked against the running suite over gRPC and REST.

Every RPC that any of the five processes serves (found by reflection, and
every service of ``iot/descriptors.binpb``) and every route of the gateway's
table must have a row in ``tests/service/authz_rows.py``; then each row is
called with no token, an expired one, a forged one (the payload of a user's
token made admin, the signature kept), one signed with a key that is not
auth's (under auth's key id and under another), an ``alg: none`` one, a
revoked session's, and a refresh, device, site, service and plain user
token. Refusals must be UNAUTHENTICATED (401) where a token is missing, bad
or of a type the row does not take, PERMISSION_DENIED (403) for a non-admin
on admin rows, and NOT_FOUND (404) for another user's resource, whether
named by their access, device or site token; a list filtered by the owner's
id shows another user none of the owner's rows. A stream opened before a
logout, or before its token expired, ends at its next message. The suite
starts once per backend; the cells of one variant run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc import aio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.app import build_app
from gateway.comments import DESCRIPTORS
from gateway.routing import Route
from gateway.upstream import upstream_of
from iot.analytics.v1 import alerts_pb2, alerts_pb2_grpc, analytics_pb2, analytics_pb2_grpc
from iot.auth.v1 import auth_pb2, auth_pb2_grpc, sites_pb2, sites_pb2_grpc
from iot.chat.v1 import chat_pb2, chat_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iot.telemetry.v1 import imports_pb2, imports_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from iotkit.server import channel
from iotkit.tokens import LEEWAY_SECONDS, b64url
from services.auth.keys import SigningKeys
from tests.conftest import Backend, Suite, open_backend, suite_with_gateway
from tests.service.auth_support import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.service.authz_rows import GATEWAY_ROUTES, ROUTES, RPCS, Resources, Row
from tests.support import PASSWORD, bearer, new_user

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
"""The tests share the module's suite, so they run in its event loop."""

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
HTTP_STATUS = {UNAUTHENTICATED: 401, PERMISSION_DENIED: 403, NOT_FOUND: 404}
SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
AUTH_REQUIRED = "Authentication required"
"""What the interceptor answers a call without a token; a public row never gets it."""

LET_IN = "let in"
"""A public row without a token: the interceptor lets it through (the servicer may refuse)."""
ACCEPTED = "accepted"
"""A token type the row takes: not refused as unauthenticated."""

BAD_TOKENS = ("expired", "forged", "wrong_key", "unknown_key", "alg_none", "revoked")
TOKEN_TYPES = ("access", "refresh", "device", "site", "service")
VARIANTS = ("no_token", *BAD_TOKENS, *TOKEN_TYPES)
OTHER_USERS = ("access", "device", "site")
"""Another user's tokens that name a resource: their session, their device's, their site's."""
CALL_TIMEOUT = 20.0
CONCURRENCY = 16
DESCRIPTOR_SET = Path(__file__).resolve().parents[2] / "iot" / DESCRIPTORS


def expectation(row: Row, variant: str) -> grpc.StatusCode | str | None:
    """What the suite must answer ``variant`` on ``row``; None when the cell says nothing."""
    if row.public and not row.token_optional:
        # Such an RPC never looks at the header; only the anonymous call is worth making.
        return LET_IN if variant == "no_token" else None
    if variant == "no_token":
        return LET_IN if row.public else UNAUTHENTICATED
    if variant in BAD_TOKENS or variant not in row.tokens:
        return UNAUTHENTICATED
    if variant == "access":
        # A user's own calls are the other tests' subject; here only the admin refusal.
        return PERMISSION_DENIED if row.admin else None
    return ACCEPTED


@dataclass(frozen=True)
class Hidden:
    """A list filtered by another user's id: it answers, and none of these ids is in it."""

    ids: frozenset[str]

    def __str__(self) -> str:
        return "an answer without the owner's rows"


Expected: TypeAlias = grpc.StatusCode | str | Hidden


@dataclass(frozen=True)
class Answer:
    """What one call answered: a gRPC code or an HTTP status, the error's message, and the
    answer's text (of a stream, its first message)."""

    code: grpc.StatusCode | int
    details: str
    body: str = ""

    def meets(self, expected: Expected) -> bool:
        """True when this answer is what the matrix expects."""
        if isinstance(expected, Hidden):
            answered = self.code in (grpc.StatusCode.OK, 200)
            return answered and not any(found in self.body for found in expected.ids)
        if isinstance(self.code, int):  # an HTTP status
            if expected == LET_IN:
                return self.code < 500 and not (self.code == 401 and self.details == AUTH_REQUIRED)
            if expected == ACCEPTED:
                return self.code < 500 and self.code != 401
            assert isinstance(expected, grpc.StatusCode)
            return self.code == HTTP_STATUS[expected]
        if expected == LET_IN:
            return self.code not in SERVER_ERRORS and self.details != AUTH_REQUIRED
        if expected == ACCEPTED:
            return self.code not in SERVER_ERRORS | {UNAUTHENTICATED}
        return self.code == expected


@dataclass
class Matrix:
    """The running suite, its gateway and every token the cells need."""

    suite: Suite
    http: httpx.AsyncClient
    routes: tuple[Route, ...]
    served: dict[str, list[str]]
    """gRPC method path -> the processes that serve it."""
    tokens: dict[str, str | None]
    resources: Resources
    owner: auth_pb2.LoginResponse
    keys: SigningKeys
    """Auth's own signing key (read from its database) for tokens no flow hands out."""


# --- the suite and its tokens -------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """One backend for the whole module, so the suite starts once per backend."""
    with open_backend(request.param, tmp_path_factory.mktemp("authz")) as backend:
        yield backend


async def _real_keys(backend: Backend, suite: Suite) -> SigningKeys:
    """Auth's own signing key, read from its database, to mint the expired token."""
    rows = await backend.sql("auth", "SELECT kid, private_pem FROM signing_keys")
    secret = suite.settings.secret_key.encode()
    keys = {}
    for kid, pem in rows:
        assert isinstance(kid, str) and isinstance(pem, bytes | memoryview)
        loaded = load_pem_private_key(bytes(pem), password=secret)
        assert isinstance(loaded, Ed25519PrivateKey)
        keys[kid] = loaded
    return SigningKeys(keys)


def _bad_tokens(keys: SigningKeys, access: str) -> dict[str, str]:
    """Tokens that must never be taken, made from a user's good ``access`` token."""
    claims = jwt.decode(access, options={"verify_signature": False})
    kid = jwt.get_unverified_header(access)["kid"]
    now = int(time.time())
    head, _, signature = access.split(".")
    raised = dict(claims, role="admin", scope=f"{claims['scope']} admin")
    stranger = Ed25519PrivateKey.generate()
    return {
        "expired": keys.sign(dict(claims, iat=now - 7200, exp=now - 3600)),
        # The payload of an admin, with the user's own (now wrong) signature.
        "forged": ".".join([head, b64url(json.dumps(raised).encode()), signature]),
        "wrong_key": jwt.encode(raised, stranger, algorithm="EdDSA", headers={"kid": kid}),
        "unknown_key": jwt.encode(raised, stranger, algorithm="EdDSA", headers={"kid": "k2"}),
        "alg_none": jwt.encode(raised, "", algorithm="none", headers={"kid": kid}),
    }


_PROBES = {
    "auth": "/iot.auth.v1.AuthService/GetMe",
    "devices": "/iot.devices.v1.DeviceService/ListDevices",
    "telemetry": "/iot.telemetry.v1.ImportService/ListBatches",
    "analytics": "/iot.analytics.v1.AnalyticsService/ListAnomalies",
    "chat": "/iot.chat.v1.ChatService/ListSessions",
}
"""One RPC of each process that takes a user's token."""


async def _until_refused(suite: Suite, token: str) -> None:
    """Wait until every process refuses ``token`` (revocations take up to a second to spread)."""
    deadline = time.monotonic() + 15
    async with process_channels(suite) as channels:
        while True:
            codes = [
                (await call_grpc(channels[name], path, None, token)).code
                for name, path in _PROBES.items()
            ]
            if all(code == UNAUTHENTICATED for code in codes):
                return
            assert time.monotonic() < deadline, f"the revoked session is still taken: {codes}"
            await asyncio.sleep(0.1)


def _spike_at(index: int) -> Any:
    """A temperature series with one spike, which analytics reports as an anomaly."""
    return lambda i: 45.0 if i == index else 20 + (i % 7) / 10


def _readings(start: datetime, value: Any, count: int = 300) -> list[telemetry_pb2.Reading]:
    readings = []
    for i in range(count):
        reading = telemetry_pb2.Reading(value=value(i))
        reading.timestamp.FromDatetime(start + timedelta(seconds=i))
        readings.append(reading)
    return readings


async def _owned_resources(suite: Suite, owner: auth_pb2.LoginResponse) -> Resources:
    """A device with two streams, an anomaly, a correlation, a batch, a file, a chat session."""
    metadata = bearer(owner.access_token)
    async with (
        channel(suite.address("devices")) as devices_ch,
        channel(suite.address("telemetry")) as telemetry_ch,
        channel(suite.address("analytics")) as analytics_ch,
        channel(suite.address("chat")) as chat_ch,
    ):
        devices = devices_pb2_grpc.DeviceServiceStub(devices_ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(telemetry_ch)
        imports = imports_pb2_grpc.ImportServiceStub(telemetry_ch)
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(analytics_ch)
        device = await devices.RegisterDevice(
            devices_pb2.RegisterDeviceRequest(name="Greenhouse", type="temperature"),
            metadata=metadata,
        )
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        for metric, value in (
            ("temperature", _spike_at(200)),
            ("humidity", lambda i: 60 - (i % 5) / 10),
        ):
            await telemetry.UploadReadings(
                telemetry_pb2.UploadReadingsRequest(
                    device_id=device.device_id,
                    metric_name=metric,
                    readings=_readings(start, value),
                ),
                metadata=metadata,
            )
        streams = await telemetry.ListStreams(
            telemetry_pb2.ListStreamsRequest(device_id=device.device_id), metadata=metadata
        )
        by_metric = {stream.metric_name: stream.stream_id for stream in streams.streams}
        correlation_request = analytics_pb2.CreateCorrelationRequest(
            stream_a=by_metric["temperature"], stream_b=by_metric["humidity"], algorithm="pearson"
        )
        correlation_request.window_start.FromDatetime(start)
        correlation_request.window_end.FromDatetime(start + timedelta(minutes=6))
        correlation = await analytics.CreateCorrelation(correlation_request, metadata=metadata)
        batch = await imports.CreateBatch(
            imports_pb2.CreateBatchRequest(device_id=device.device_id), metadata=metadata
        )
        upload = await imports.CreateUpload(
            imports_pb2.CreateUploadRequest(
                batch_id=batch.batch_id,
                device_id=device.device_id,
                metric_name="temperature",
                filename="history.csv",
                format="csv",
            ),
            metadata=metadata,
        )
        chat = await chat_pb2_grpc.ChatServiceStub(chat_ch).CreateSession(
            chat_pb2.CreateSessionRequest(), metadata=metadata
        )
        rule = await alerts_pb2_grpc.AlertServiceStub(analytics_ch).CreateAlertRule(
            alerts_pb2.CreateAlertRuleRequest(
                spec=alerts_pb2.AlertRuleSpec(name="greenhouse", kind="anomaly", live=True)
            ),
            metadata=metadata,
        )
        # The spike becomes an anomaly once analytics has read the forwarded readings.
        deadline = time.monotonic() + 60
        while True:
            found = await analytics.ListAnomalies(
                analytics_pb2.ListAnomaliesRequest(device_id=device.device_id), metadata=metadata
            )
            if found.anomalies:
                break
            assert time.monotonic() < deadline, "analytics found no anomaly in the spike"
            await asyncio.sleep(0.2)
    return Resources(
        device_id=device.device_id,
        stream_id=by_metric["temperature"],
        other_stream_id=by_metric["humidity"],
        anomaly_id=found.anomalies[0].anomaly_id,
        correlation_id=correlation.correlation_id,
        batch_id=batch.batch_id,
        file_id=upload.file_id,
        session_id=jwt.decode(owner.access_token, options={"verify_signature": False})["sid"],
        chat_session_id=chat.session.session_id,
        alert_rule_id=rule.rule.rule_id,
    )


async def _tokens(suite: Suite, backend: Backend) -> dict[str, str | None]:
    """A token of each kind for each variant: ``access``, ``refresh``, ``device`` and ``site``
    are another user's (their own device, their own account's site), never the owner's."""
    async with (
        channel(suite.address("auth")) as auth_ch,
        channel(suite.address("devices")) as devices_ch,
    ):
        auth = auth_pb2_grpc.AuthServiceStub(auth_ch)
        other = await new_user(auth)
        revoked = await new_user(auth)
        await auth.Logout(auth_pb2.LogoutRequest(), metadata=bearer(revoked.access_token))
        admin = bearer(
            (
                await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
            ).access_token
        )
        accounts = sites_pb2_grpc.AccountServiceStub(auth_ch)
        account = await accounts.CreateAccount(
            sites_pb2.CreateAccountRequest(
                email=f"plant-{uuid.uuid4().hex[:8]}@example.com",
                name="Plant",
                max_concurrent_batches=2,
                owner_user_id=other.user.uuid,
            ),
            metadata=admin,
        )
        site = await accounts.CreateSite(
            sites_pb2.CreateSiteRequest(
                account_id=account.id, domain=f"p{uuid.uuid4().hex[:8]}.example.com", name="P7"
            ),
            metadata=admin,
        )
        site_token = await sites_pb2_grpc.SiteTokenServiceStub(auth_ch).IssueSiteToken(
            sites_pb2.IssueSiteTokenRequest(site_id=site.site.id, client_secret=site.client_secret)
        )
        service_token = await auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(
                service="telemetry", client_secret=suite.settings.service_secret
            )
        )
        devices = devices_pb2_grpc.DeviceServiceStub(devices_ch)
        own_device = await devices.RegisterDevice(
            devices_pb2.RegisterDeviceRequest(name="Mine", type="generic"),
            metadata=bearer(other.access_token),
        )
        credential = await devices.IssueDeviceCredential(
            devices_pb2.IssueDeviceCredentialRequest(device_id=own_device.device_id, valid_days=1),
            metadata=bearer(other.access_token),
        )
    await _until_refused(suite, revoked.access_token)
    return {
        "no_token": None,
        **_bad_tokens(await _real_keys(backend, suite), other.access_token),
        "revoked": revoked.access_token,
        "access": other.access_token,
        "refresh": other.refresh_token,
        "device": credential.token,
        "site": site_token.token,
        "service": service_token.token,
    }


async def _served(suite: Suite) -> dict[str, list[str]]:
    """Every gRPC method any process serves (by reflection), and the processes serving it."""
    pool = descriptor_pool.Default()
    served: dict[str, list[str]] = {}
    for name in suite.processes:
        async with channel(suite.address(name)) as process_ch:
            stub = reflection_pb2_grpc.ServerReflectionStub(process_ch)

            async def listing() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
                yield reflection_pb2.ServerReflectionRequest(list_services="")

            async for answer in stub.ServerReflectionInfo(listing()):
                for service in answer.list_services_response.service:
                    for method in pool.FindServiceByName(service.name).methods:
                        path = f"/{service.name}/{method.name}"
                        served.setdefault(path, []).append(name)
    return served


def described() -> set[str]:
    """Every RPC of every service in the descriptor set the code generator wrote."""
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(DESCRIPTOR_SET.read_bytes())
    return {
        f"/{file.package}.{service.name}/{method.name}"
        for file in files.file
        if file.package.startswith("iot.")
        for service in file.service
        for method in service.method
    }


def route_key(route: Route) -> str:
    """A route as the matrix names it: ``VERB /template``."""
    return f"{route.verb} {route.template.source}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(matrix_backend: Backend) -> AsyncIterator[Matrix]:
    """The five services and the gateway, with an owner's resources and every kind of token."""
    async with suite_with_gateway(
        matrix_backend, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD
    ) as (suite, http):
        async with channel(suite.address("auth")) as auth_ch:
            owner = await new_user(auth_pb2_grpc.AuthServiceStub(auth_ch))
        resources = await _owned_resources(suite, owner)
        tokens = {**await _tokens(suite, matrix_backend), "owner": owner.access_token}
        yield Matrix(
            suite=suite,
            http=http,
            routes=build_app(suite.settings).state.route_table.routes,
            served=await _served(suite),
            tokens=tokens,
            resources=resources,
            owner=owner,
            keys=await _real_keys(matrix_backend, suite),
        )


# --- calling one cell ---------------------------------------------------------------------


def _method(path: str) -> MethodDescriptor:
    service, _, name = path.lstrip("/").partition("/")
    return descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]


async def _one(request: Message) -> AsyncIterator[Message]:
    yield request


async def call_grpc(
    process_channel: aio.Channel,
    path: str,
    request: Message | None,
    token: str | None,
    *,
    whole: bool = False,
) -> Answer:
    """Call ``path`` with ``request`` (an empty one by default); a stream is read to its first
    message, which is as far as authorization goes, or to its end when ``whole``."""
    method = _method(path)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    message = request if request is not None else request_class()
    options: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": response_class.FromString,
    }
    kwargs: dict[str, Any] = {"metadata": bearer(token) if token else None, "timeout": CALL_TIMEOUT}
    try:
        if method.client_streaming and method.server_streaming:
            stream = process_channel.stream_stream(path, **options)(_one(message), **kwargs)
        elif method.server_streaming:
            stream = process_channel.unary_stream(path, **options)(message, **kwargs)
        elif method.client_streaming:
            reply = await process_channel.stream_unary(path, **options)(_one(message), **kwargs)
            return Answer(grpc.StatusCode.OK, "", str(reply))
        else:
            reply = await process_channel.unary_unary(path, **options)(message, **kwargs)
            return Answer(grpc.StatusCode.OK, "", str(reply))
        read = []
        async for reply in stream:
            read.append(str(reply))
            if not whole:
                break
        stream.cancel()
    except aio.AioRpcError as error:
        return Answer(error.code(), error.details() or "")
    return Answer(grpc.StatusCode.OK, "", "".join(read))


async def call_rest(
    http: httpx.AsyncClient, route: Route, request: Message | None, token: str | None
) -> Answer:
    """Call ``route`` with the fields of ``request`` in its path, query or body (made-up ids
    when there is no request); an event stream is not read past its status."""
    fields = json_format.MessageToDict(request, preserving_proto_field_name=True) if request else {}
    path = route.template.openapi_path()
    for variable in route.template.variables:
        value = fields.pop(variable.field_path[0], None) or str(uuid.uuid4())
        path = path.replace("{" + variable.name + "}", str(value))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {}
    where = route.binding.body if route.binding else ""
    if where == "*":
        body["json"] = fields
    elif where:
        data = getattr(request, where, b"") if request else b""
        body["content"] = data
        headers["content-type"] = "text/csv"
    else:
        body["params"] = fields
    async with http.stream(route.verb, path, headers=headers, **body) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return Answer(response.status_code, "")
        raw = await response.aread()
        if response.status_code < 400:
            return Answer(response.status_code, "", raw.decode("utf-8", "replace"))
        envelope = _envelope(raw)
    return Answer(response.status_code, str(envelope.get("message", "")))


def _envelope(raw: bytes) -> dict[str, Any]:
    """The envelope of an error answer."""
    loaded = json.loads(raw)
    assert isinstance(loaded, dict), loaded
    return loaded


def _verdict(where: str, expected: Expected, answer: Answer) -> str | None:
    if answer.meets(expected):
        return None
    wanted = expected.name if isinstance(expected, grpc.StatusCode) else str(expected)
    got = answer.code.name if isinstance(answer.code, grpc.StatusCode) else answer.code
    return f"{where}: expected {wanted}, got {got} {answer.details!r}"


async def _gather(cells: list[Any]) -> list[str]:
    """Run the cells, at most CONCURRENCY at once; answers the failures."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(cell: Any) -> str | None:
        async with gate:
            result: str | None = await cell
            return result

    return sorted(f for f in await asyncio.gather(*(run(cell) for cell in cells)) if f)


@asynccontextmanager
async def process_channels(suite: Suite) -> AsyncIterator[dict[str, aio.Channel]]:
    """A channel to each process."""
    channels = {name: channel(suite.address(name)) for name in suite.processes}
    try:
        yield channels
    finally:
        for opened in channels.values():
            await opened.close()


Plan: TypeAlias = list[tuple[str, Message | None, Expected]]
"""The cells of one variant: RPC path, request (None for an empty one), what it must answer."""


def token_plan(variant: str) -> Plan:
    """Every RPC called with ``variant``'s token and an empty request."""
    return [
        (path, None, expected)
        for path, row in RPCS.items()
        if (expected := expectation(row, variant)) is not None
    ]


def owned_plan(resources: Resources, variant: str) -> Plan:
    """Every RPC that names a resource, called with the owner's ids by another user's token:
    NOT_FOUND, or for a list filtered by the owner's id, none of the owner's rows."""
    plan: Plan = [
        (path, row.owned(resources), NOT_FOUND)
        for path, row in RPCS.items()
        if row.owned is not None and variant in row.tokens
    ]
    for path, row in RPCS.items():
        if row.filtered is not None and variant in row.tokens:
            request = row.filtered(resources)
            ids = {value for value in astuple(resources) if value not in str(request)}
            plan.append((path, request, Hidden(frozenset(ids))))
    return plan


async def grpc_misses(matrix: Matrix, variant: str, plan: Plan) -> list[str]:
    """Call each cell of ``plan`` on every process serving its RPC; answers every miss."""

    async def cell(
        process_channel: aio.Channel,
        where: str,
        path: str,
        request: Message | None,
        expected: Expected,
    ) -> str | None:
        token = matrix.tokens[variant]
        whole = isinstance(expected, Hidden)
        answer = await call_grpc(process_channel, path, request, token, whole=whole)
        return _verdict(where, expected, answer)

    async with process_channels(matrix.suite) as channels:
        cells = [
            cell(channels[process], f"{path} on {process} [{variant}]", path, request, expected)
            for path, request, expected in plan
            for process in matrix.served.get(path, [])
        ]
        misses = await _gather(cells)
    assert cells
    return misses


async def rest_misses(matrix: Matrix, variant: str, plan: Plan) -> list[str]:
    """Call each cell of ``plan`` on every route of its RPC (and, without a token, the
    gateway's own routes); answers every miss."""

    async def cell(route: Route, request: Message | None, expected: Expected) -> str | None:
        answer = await call_rest(matrix.http, route, request, matrix.tokens[variant])
        return _verdict(f"{route_key(route)} [{variant}]", expected, answer)

    planned = {path: (request, expected) for path, request, expected in plan}
    cells = [
        cell(route, *planned[route.rpc.grpc_path])
        for route in matrix.routes
        if route.rpc is not None and route.rpc.grpc_path in planned
    ]
    if variant == "no_token":
        cells += [cell(route, None, LET_IN) for route in matrix.routes if route.rpc is None]
    misses = await _gather(cells)
    assert cells
    return misses


# --- the tests ------------------------------------------------------------------------------


def test_every_rpc_has_a_row(matrix: Matrix) -> None:
    enumerated = set(matrix.served) | described()
    assert not enumerated - set(RPCS), f"RPCs without a row: {sorted(enumerated - set(RPCS))}"
    assert not set(RPCS) - enumerated, f"rows of no RPC: {sorted(set(RPCS) - enumerated)}"
    for path in described():
        # Each API is served by the process its package names; the diagnostics by every one.
        process = upstream_of(_method(path).containing_service)
        serving = matrix.served.get(path, [])
        assert serving and (process is None or process in serving), f"{path}: {serving}"


def test_every_route_has_a_row(matrix: Matrix) -> None:
    seen = set()
    for route in matrix.routes:
        key = route_key(route)
        if route.rpc is None:
            static = route.verb == "GET" and route.template.source.startswith("/static/")
            seen.add("GET /static/*" if static else key)
            assert (key in GATEWAY_ROUTES) or static, f"gateway route without a row: {key}"
            continue
        seen.add(key)
        assert ROUTES.get(key) == route.rpc.grpc_path, f"route without its row: {key}"
    assert seen == set(ROUTES) | set(GATEWAY_ROUTES), sorted(
        seen ^ (set(ROUTES) | set(GATEWAY_ROUTES))
    )


CHECKS = {"grpc": grpc_misses, "rest": rest_misses}


@IN_MODULE_LOOP
@pytest.mark.parametrize("transport", CHECKS)
@pytest.mark.parametrize("variant", VARIANTS)
async def test_matrix(matrix: Matrix, transport: str, variant: str) -> None:
    misses = await CHECKS[transport](matrix, variant, token_plan(variant))
    assert not misses, "\n".join(misses)


@IN_MODULE_LOOP
@pytest.mark.parametrize("transport", CHECKS)
@pytest.mark.parametrize("variant", OTHER_USERS)
async def test_another_users_resource_is_not_found(
    matrix: Matrix, transport: str, variant: str
) -> None:
    misses = await CHECKS[transport](matrix, variant, owned_plan(matrix.resources, variant))
    assert not misses, "\n".join(misses)


@IN_MODULE_LOOP
@pytest.mark.parametrize("transport", CHECKS)
async def test_the_filtered_lists_show_the_owner_their_rows(matrix: Matrix, transport: str) -> None:
    """The control of the lists above: the same filter shows the owner what it hides."""
    plan = [cell for cell in owned_plan(matrix.resources, "access") if isinstance(cell[2], Hidden)]
    misses = await CHECKS[transport](matrix, "owner", plan)
    assert plan and len(misses) == len(plan), misses


@IN_MODULE_LOOP
@pytest.mark.parametrize("ending", ["logout", "expiry"])
async def test_a_live_stream_ends_with_its_token(matrix: Matrix, ending: str) -> None:
    """A stream opened before a logout, or before its token expired, shows nothing after it:
    its next message is a 401, while a live session's stream shows that message."""
    stream = analytics_pb2.WatchAnomaliesRequest(device_id=matrix.resources.device_id)
    async with (
        channel(matrix.suite.address("auth")) as auth_ch,
        channel(matrix.suite.address("analytics")) as analytics_ch,
        channel(matrix.suite.address("telemetry")) as telemetry_ch,
    ):
        auth = auth_pb2_grpc.AuthServiceStub(auth_ch)
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(analytics_ch)
        if ending == "logout":
            login = auth_pb2.LoginRequest(email=matrix.owner.user.email, password=PASSWORD)
            token = (await auth.Login(login)).access_token
        else:  # the owner's own token, about to run out (past the verifier's leeway)
            claims = jwt.decode(matrix.owner.access_token, options={"verify_signature": False})
            ends = int(time.time()) - LEEWAY_SECONDS + 2
            token = matrix.keys.sign(dict(claims, jti=str(uuid.uuid4()), exp=ends))
        live = analytics.WatchAnomalies(stream, metadata=bearer(token), timeout=60)
        control = analytics.WatchAnomalies(stream, metadata=bearer(matrix.owner.access_token))
        await live.initial_metadata()  # both streams are open (the servicer says so)
        await control.initial_metadata()
        if ending == "logout":
            await auth.Logout(auth_pb2.LogoutRequest(), metadata=bearer(token))
            await _until_refused(matrix.suite, token)
        else:
            while time.time() <= ends + LEEWAY_SECONDS:
                await asyncio.sleep(0.1)

        # A spike on a new stream of the owner's device: the control sees it, the ended
        # stream must not.
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        await telemetry_pb2_grpc.TelemetryServiceStub(telemetry_ch).UploadReadings(
            telemetry_pb2.UploadReadingsRequest(
                device_id=matrix.resources.device_id,
                metric_name=f"probe_{ending}",
                readings=_readings(start, _spike_at(200)),
            ),
            metadata=bearer(matrix.owner.access_token),
        )
        seen = await asyncio.wait_for(anext(control.__aiter__()), timeout=60)
        assert seen.device_id == matrix.resources.device_id
        control.cancel()
        with pytest.raises(aio.AioRpcError) as ended:
            async for anomaly in live:
                pytest.fail(f"an ended token was shown {anomaly.anomaly_id}")
    assert ended.value.code() == UNAUTHENTICATED
