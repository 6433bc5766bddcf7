"""Properties of every RPC of the suite under hostile input, on SQLite and PostgreSQL.

For each RPC found in the generated descriptors, Hypothesis builds requests
field by field (edge numbers, NaN, huge and NUL text, bad enum numbers,
unknown fields), sends them with valid tokens of every type the RPC accepts
(so authorization does not hide the handler) or with garbage metadata, and
also sends raw undecodable and oversized bytes. Whatever comes back is a
well-defined status: never INTERNAL or UNKNOWN, never an exception's class
name or a traceback in the details, and the process still answers health
SERVING. The suite starts once per module and backend.
"""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import jwt
import pytest
import pytest_asyncio
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import iot
from gateway.comments import DESCRIPTORS
from iot.auth.v1 import auth_pb2, auth_pb2_grpc, sites_pb2, sites_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.config import SERVICES
from iotkit.rules import access_rule
from iotkit.server import MAX_MESSAGE_BYTES
from tests.conftest import Backend, Suite, open_backend, start_suite
from tests.service.auth_support import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.service.proto_strategies import Rpc, encoded_requests, rpc_methods, varint
from tests.support import PASSWORD, bearer, new_email, new_user

# The suite starts once per module: every test runs in the module's event loop.
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

RPCS = rpc_methods()
RPC_IDS = [f"{rpc.process}:{rpc.path.lstrip('/')}" for rpc in RPCS]

NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# A class name (ValueError, KeyError, OperationalError...) or a traceback in the details.
LEAK = re.compile(r"Traceback|File \"|\b[A-Z][A-Za-z]*(?:Error|Exception)\b")
CLIENT_CORE_ERROR = "Internal error from Core"
UNARY_DEADLINE = 20.0
# Watches never end on their own: a few messages or this long, then the client hangs up.
STREAM_DEADLINE = 1.0
STREAM_READS = 3

FUZZ = settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@dataclass(repr=False)
class Env:
    """The running suite, one channel per process, and a valid token of every type."""

    suite: Suite
    channels: dict[str, grpc.aio.Channel]
    tokens: dict[str, list[str]]

    def __repr__(self) -> str:
        return "Env(...)"  # Hypothesis prints it with each failing example

    def valid_tokens(self, rpc: Rpc) -> list[str]:
        """Tokens of the types ``rpc`` accepts, those with the scopes it needs first."""
        rule = access_rule(rpc.path)
        types = rule.token_types or frozenset({"access"})
        fitting = [token for kind in sorted(types) for token in self.tokens.get(kind, [])]
        return sorted(fitting, key=lambda token: not rule.scopes <= scopes_of(token))


def scopes_of(token: str) -> frozenset[str]:
    """The scopes a token grants (read, not verified: the test issued it)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return frozenset(str(claims.get("scope", "")).split())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """One backend for the whole module, so the suite starts once per backend."""
    with open_backend(request.param, tmp_path_factory.mktemp("props")) as chosen:
        yield chosen


async def _site_token(auth: grpc.aio.Channel, admin: list[tuple[str, str]]) -> str:
    accounts = sites_pb2_grpc.AccountServiceStub(auth)
    account = await accounts.CreateAccount(
        sites_pb2.CreateAccountRequest(email=new_email(), name="Fuzz Co"), metadata=admin
    )
    domain = f"{account.id[:8]}.fuzz.example.com"
    created = await accounts.CreateSite(
        sites_pb2.CreateSiteRequest(account_id=account.id, domain=domain, name="Line"),
        metadata=admin,
    )
    granted = await sites_pb2_grpc.SiteTokenServiceStub(auth).IssueSiteToken(
        sites_pb2.IssueSiteTokenRequest(
            site_id=created.site.id, client_secret=created.client_secret
        )
    )
    return granted.token


async def _device_token(devices: grpc.aio.Channel, user: list[tuple[str, str]]) -> str:
    stub = devices_pb2_grpc.DeviceServiceStub(devices)
    device = await stub.RegisterDevice(
        devices_pb2.RegisterDeviceRequest(name="fuzz", type="temperature"), metadata=user
    )
    issued = await stub.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id), metadata=user
    )
    return issued.token


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(module_backend: Backend) -> AsyncIterator[Env]:
    """The five services with an admin, and channels to each."""
    suite = await start_suite(
        module_backend, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD
    )
    channels = {name: grpc.aio.insecure_channel(suite.address(name)) for name in SERVICES}
    try:
        auth = auth_pb2_grpc.AuthServiceStub(channels["auth"])
        admin = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
        user = await new_user(auth)
        services = [
            await auth.IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(
                    service=name, client_secret=suite.settings.service_secret
                )
            )
            for name in SERVICES
            if name != "auth"  # auth signs its own; it never asks for a service token
        ]
        tokens = {
            "access": [user.access_token, admin.access_token],
            "service": [issued.token for issued in services],
            "device": [await _device_token(channels["devices"], bearer(user.access_token))],
            "site": [await _site_token(channels["auth"], bearer(admin.access_token))],
        }
        yield Env(suite, channels, tokens)
    finally:
        for channel in channels.values():
            await channel.close()
        await suite.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def fresh(env: Env) -> Env:
    """``env`` with new sessions for the user and the admin: an RPC that ends the caller's
    session (Logout, RevokeOtherSessions) must not leave the next RPC only UNAUTHENTICATED."""
    auth = auth_pb2_grpc.AuthServiceStub(env.channels["auth"])
    admin = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    user = await new_user(auth)
    env.tokens["access"] = [user.access_token, admin.access_token]
    return env


_HEADER_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-._~+/=!$%&*", max_size=80)
GARBAGE_AUTHORIZATION = (
    "",
    "Bearer",
    "Bearer ",
    "bearer    ",
    "Basic dXNlcjpwYXNz",
    "Token abc",
    "Bearer a.b.c",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "Bearer " + "A" * 3000,
)


def metadata_for(tokens: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Call metadata: mostly a valid token, otherwise a broken or forged one, plus
    client headers with odd values."""
    valid = st.sampled_from(tokens).map(lambda token: f"Bearer {token}")
    tampered = st.tuples(st.sampled_from(tokens), st.integers(0, 200), _HEADER_TEXT).map(
        lambda found: "Bearer " + found[0][: found[1]] + found[2]
    )
    garbage = st.one_of(
        st.sampled_from(GARBAGE_AUTHORIZATION), _HEADER_TEXT.map(lambda text: f"Bearer {text}")
    )
    authorization = st.one_of(valid, valid, valid, tampered, garbage)
    extra = st.lists(
        st.tuples(
            st.sampled_from(
                ["x-request-id", "x-forwarded-for", "x-forwarded-user-agent", "authorization"]
            ),
            st.one_of(_HEADER_TEXT, st.sampled_from(["", " ", "1.2.3.4, ::1", "a" * 2000])),
        ),
        max_size=2,
    )
    return st.tuples(authorization, extra).map(lambda both: [("authorization", both[0])] + both[1])


async def call(
    channel: grpc.aio.Channel, rpc: Rpc, requests: list[bytes], metadata: list[tuple[str, str]]
) -> tuple[grpc.StatusCode, str]:
    """Send raw ``requests`` (one unless the client streams); the final status and details."""
    client_streams, server_streams = rpc.streaming
    timeout = STREAM_DEADLINE if server_streams else UNARY_DEADLINE
    # No serializers: the bytes go out as they are and come back as bytes.
    try:
        if not server_streams:
            if client_streams:
                await channel.stream_unary(rpc.path)(
                    iter(requests), metadata=metadata, timeout=timeout
                )
            else:
                await channel.unary_unary(rpc.path)(requests[0], metadata=metadata, timeout=timeout)
            return grpc.StatusCode.OK, ""
        if client_streams:
            stream = channel.stream_stream(rpc.path)(
                iter(requests), metadata=metadata, timeout=timeout
            )
        else:
            stream = channel.unary_stream(rpc.path)(requests[0], metadata=metadata, timeout=timeout)
        reads = 0
        async for _ in stream:
            reads += 1
            if reads >= STREAM_READS:
                stream.cancel()
                return grpc.StatusCode.CANCELLED, ""
        return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""


def server_failures(env: Env, process: str) -> int:
    """How many calls ``process`` has answered INTERNAL or UNKNOWN, by its own counters."""
    counted = env.suite.processes[process].built.counters.by_code
    return sum(counted.get(code.name, 0) for code in NEVER)


async def assert_well_defined(
    env: Env, rpc: Rpc, requests: list[bytes], metadata: list[tuple[str, str]]
) -> grpc.StatusCode:
    """Call ``rpc``, assert the answer is well defined and the process still SERVING."""
    before = server_failures(env, rpc.process)
    code, details = await call(env.channels[rpc.process], rpc, requests, metadata)
    # The client's own INTERNAL when it writes after the server ended the call (a refused
    # first message); what the server answered is in its counters, checked below.
    late_write = rpc.streaming[0] and details == CLIENT_CORE_ERROR
    assert code not in NEVER or late_write, f"{rpc.path} answered {code.name}: {details}"
    assert server_failures(env, rpc.process) == before, f"{rpc.path} failed on the server"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        assert rpc.streaming[1], f"{rpc.path} did not answer within {UNARY_DEADLINE}s"
    assert not LEAK.search(details), f"{rpc.path} answered {code.name} with {details!r}"
    await assert_serving(env, rpc.process)
    return code


async def assert_serving(env: Env, process: str) -> None:
    """The health of ``process`` is SERVING."""
    health = health_pb2_grpc.HealthStub(env.channels[process])
    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=UNARY_DEADLINE)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING, process


@IN_MODULE_LOOP
@pytest.mark.parametrize("rpc", RPCS, ids=RPC_IDS)
@FUZZ
@given(data=st.data())
async def test_any_request_gets_a_well_defined_status(
    fresh: Env, rpc: Rpc, data: st.DataObject
) -> None:
    requests = encoded_requests(rpc.method.input_type)
    if rpc.streaming[0]:
        sent = data.draw(st.lists(requests, min_size=1, max_size=3), label="requests")
    else:
        sent = [data.draw(requests, label="request")]
    metadata = data.draw(metadata_for(fresh.valid_tokens(rpc)), label="metadata")
    await assert_well_defined(fresh, rpc, sent, metadata)


@IN_MODULE_LOOP
@settings(FUZZ, max_examples=60)
@given(rpc=st.sampled_from(RPCS), raw=st.binary(min_size=1, max_size=64))
async def test_raw_bytes_get_a_well_defined_status(fresh: Env, rpc: Rpc, raw: bytes) -> None:
    await assert_well_defined(fresh, rpc, [raw], bearer(fresh.valid_tokens(rpc)[0]))


# Field 1 announced as length-delimited, 127 bytes long, with none following.
TRUNCATED = b"\x0a\x7f"


@IN_MODULE_LOOP
@pytest.mark.parametrize("rpc", RPCS, ids=RPC_IDS)
async def test_undecodable_bytes_are_invalid_argument(fresh: Env, rpc: Rpc) -> None:
    token = fresh.valid_tokens(rpc)[0]
    code = await assert_well_defined(fresh, rpc, [TRUNCATED], bearer(token))
    if access_rule(rpc.path).scopes <= scopes_of(token):
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    else:  # no token the test can get has the scope (system:read is auth's own)
        assert code == grpc.StatusCode.PERMISSION_DENIED


@IN_MODULE_LOOP
@pytest.mark.parametrize("process", SERVICES)
async def test_an_oversized_request_is_resource_exhausted(fresh: Env, process: str) -> None:
    rpc = next(r for r in RPCS if r.process == process and not any(r.streaming))
    # A valid string field 1 that is one byte too big for the server's limit.
    size = MAX_MESSAGE_BYTES + 1
    header = b"\x0a" + varint(size)
    code = await assert_well_defined(
        fresh, rpc, [header + b"a" * size], bearer(fresh.valid_tokens(rpc)[0])
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


@IN_MODULE_LOOP
async def test_every_process_still_serves_after_the_fuzzing(env: Env) -> None:
    for process in SERVICES:
        await assert_serving(env, process)
    # And still does its job: a login with the right password works.
    auth = auth_pb2_grpc.AuthServiceStub(env.channels["auth"])
    email = new_email()
    await new_user(auth, email)
    answer = await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    assert answer.access_token


def test_every_rpc_of_the_descriptor_set_is_fuzzed() -> None:
    described = descriptor_pb2.FileDescriptorSet.FromString(
        (Path(iot.__path__[0]) / DESCRIPTORS).read_bytes()
    )
    paths = {
        f"/{proto.package}.{service.name}/{method.name}"
        for proto in described.file
        if proto.package.startswith("iot.")
        for service in proto.service
        for method in service.method
    }
    assert len(paths) > 90
    assert {rpc.path for rpc in RPCS} == paths
    # The diagnostics every process serves are fuzzed on each of them.
    assert {rpc.process for rpc in RPCS} == set(SERVICES)
