"""The devices service over real gRPC with auth beside it, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import jwt
import pytest
from google.protobuf import timestamp_pb2

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iot.devices.v1 import devices_pb2, devices_pb2_grpc
from iotkit.config import PLACEHOLDER_SECRET
from iotkit.errors import reason_of, violations_of
from tests.conftest import Backend, Suite, start_suite
from tests.support import PASSWORD, bearer, new_email, new_user


@dataclass
class Clients:
    auth: auth_pb2_grpc.AuthServiceStub
    devices: devices_pb2_grpc.DeviceServiceStub
    suite: Suite
    backend: Backend


@pytest.fixture
async def clients(backend: Backend) -> AsyncIterator[Clients]:
    suite = await start_suite(backend, ("auth", "devices"))
    async with (
        grpc.aio.insecure_channel(suite.address("auth")) as auth_channel,
        grpc.aio.insecure_channel(suite.address("devices")) as devices_channel,
    ):
        yield Clients(
            auth_pb2_grpc.AuthServiceStub(auth_channel),
            devices_pb2_grpc.DeviceServiceStub(devices_channel),
            suite,
            backend,
        )
    await suite.aclose()


async def user(clients: Clients, *, admin: bool = False) -> list[tuple[str, str]]:
    """A new user's call metadata; an admin is promoted in auth's own database."""
    if not admin:
        return bearer((await new_user(clients.auth)).access_token)
    email = new_email()
    await clients.auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    await promote(clients.backend, email)
    login = await clients.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    return bearer(login.access_token)


async def promote(backend: Backend, email: str) -> None:
    """Make a user an admin, the way `iot admin create` will (issue 6)."""
    await backend.sql("auth", "UPDATE users SET role = 'admin' WHERE email = ?", (email,))


async def register(
    clients: Clients,
    who: list[tuple[str, str]],
    name: str = "Boiler",
    kind: str = "temperature",
    **extra: object,
) -> devices_pb2.Device:
    request = devices_pb2.RegisterDeviceRequest(name=name, type=kind, **extra)  # type: ignore[arg-type]
    return await clients.devices.RegisterDevice(request, metadata=who)


async def failure(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_register_each_type_with_and_without_location(clients: Clients) -> None:
    ann = await user(clients)
    for kind in ("temperature", "pressure", "motion", "generic"):
        device = await register(clients, ann, name=f"{kind} sensor", kind=kind)
        assert device.type == kind and device.status == "active"
        uuid.UUID(device.device_id)
        assert not device.HasField("location")
    placed = await register(
        clients, ann, location=devices_pb2.Location(latitude=45.07, longitude=7.69), kind="Pressure"
    )
    assert placed.type == "pressure"
    assert (placed.location.latitude, placed.location.longitude) == (45.07, 7.69)
    me = await clients.auth.GetMe(auth_pb2.GetMeRequest(), metadata=ann)
    assert placed.user_id == me.user.uuid
    assert placed.HasField("registered_at") and not placed.HasField("last_seen_at")


@pytest.mark.parametrize(
    ("name", "kind", "location", "expected"),
    [
        ("", "temperature", None, {"name": "Name is required"}),
        ("x" * 101, "temperature", None, {"name": "Name must be between 1 and 100 characters"}),
        (
            "ok",
            "humidity",
            None,
            {"type": "Type must be one of: temperature, pressure, motion, generic"},
        ),
        (
            "ok",
            "motion",
            (91.0, -181.0),
            {
                "location.latitude": "Latitude must be between -90 and 90",
                "location.longitude": "Longitude must be between -180 and 180",
            },
        ),
        (
            "ok",
            "motion",
            (float("nan"), 0.0),
            {"location.latitude": "Latitude must be between -90 and 90"},
        ),
    ],
)
async def test_bad_registrations_name_each_field(
    clients: Clients,
    name: str,
    kind: str,
    location: tuple[float, float] | None,
    expected: dict[str, str],
) -> None:
    ann = await user(clients)
    request = devices_pb2.RegisterDeviceRequest(name=name, type=kind)
    if location:
        request.location.latitude, request.location.longitude = location
    error = await failure(clients.devices.RegisterDevice(request, metadata=ann))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field: v.message for v in violations_of(error)} == expected


async def test_list_pages_filters_and_sorts(clients: Clients) -> None:
    ann = await user(clients)
    for index in range(7):
        await register(
            clients, ann, name=f"Sensor {index:02d}", kind=("motion" if index % 2 else "pressure")
        )
    page = await clients.devices.ListDevices(
        devices_pb2.ListDevicesRequest(page=2, limit=3, sort="name"), metadata=ann
    )
    assert [d.name for d in page.devices] == ["Sensor 03", "Sensor 04", "Sensor 05"]
    assert page.total_count == 7
    assert (
        page.pagination.page,
        page.pagination.limit,
        page.pagination.total,
        page.pagination.total_pages,
    ) == (
        2,
        3,
        7,
        3,
    )
    motion = await clients.devices.ListDevices(
        devices_pb2.ListDevicesRequest(type="motion"), metadata=ann
    )
    assert motion.total_count == 3 and {d.type for d in motion.devices} == {"motion"}
    found = await clients.devices.ListDevices(
        devices_pb2.ListDevicesRequest(search="sor 0"), metadata=ann
    )
    assert found.total_count == 7
    one = await clients.devices.ListDevices(
        devices_pb2.ListDevicesRequest(search="SENSOR 06"), metadata=ann
    )
    assert [d.name for d in one.devices] == ["Sensor 06"]
    beyond = await clients.devices.ListDevices(
        devices_pb2.ListDevicesRequest(page=9, limit=3), metadata=ann
    )
    assert list(beyond.devices) == [] and beyond.total_count == 7
    newest_first = await clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=ann)
    stamps = [(d.registered_at.ToNanoseconds(), d.device_id) for d in newest_first.devices]
    assert stamps == sorted(stamps, reverse=True)
    assert newest_first.pagination.limit == 20


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 101}, "limit"),
        ({"page": -2}, "page"),
        ({"type": "humidity"}, "type"),
        ({"status": "broken"}, "status"),
        ({"sort": "colour"}, "sort"),
    ],
)
async def test_bad_list_parameters(
    clients: Clients, request_fields: dict[str, object], field: str
) -> None:
    ann = await user(clients)
    request = devices_pb2.ListDevicesRequest(**request_fields)  # type: ignore[arg-type]
    error = await failure(clients.devices.ListDevices(request, metadata=ann))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(error)] == [field]


async def test_update_and_decommission(clients: Clients) -> None:
    ann = await user(clients)
    device = await register(clients, ann, location=devices_pb2.Location(latitude=1, longitude=2))
    renamed = await clients.devices.UpdateDevice(
        devices_pb2.UpdateDeviceRequest(
            device_id=device.device_id, name="Cellar", status="maintenance"
        ),
        metadata=ann,
    )
    assert (renamed.name, renamed.status, renamed.location.latitude) == ("Cellar", "maintenance", 1)
    cleared = await clients.devices.UpdateDevice(
        devices_pb2.UpdateDeviceRequest(device_id=device.device_id, clear_location=True),
        metadata=ann,
    )
    assert not cleared.HasField("location") and cleared.name == "Cellar"
    error = await failure(
        clients.devices.UpdateDevice(
            devices_pb2.UpdateDeviceRequest(device_id=device.device_id, status="retired"),
            metadata=ann,
        )
    )
    assert [v.field for v in violations_of(error)] == ["status"]
    gone = await clients.devices.DecommissionDevice(
        devices_pb2.DecommissionDeviceRequest(device_id=device.device_id), metadata=ann
    )
    assert gone.device_id == device.device_id and gone.HasField("decommissioned_at")
    for call in (
        clients.devices.GetDevice(
            devices_pb2.GetDeviceRequest(device_id=device.device_id), metadata=ann
        ),
        clients.devices.DecommissionDevice(
            devices_pb2.DecommissionDeviceRequest(device_id=device.device_id), metadata=ann
        ),
    ):
        assert (await failure(call)).code() == grpc.StatusCode.NOT_FOUND
    listed = await clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=ann)
    assert listed.total_count == 0


async def test_malformed_device_id_is_400(clients: Clients) -> None:
    ann = await user(clients)
    error = await failure(
        clients.devices.GetDevice(devices_pb2.GetDeviceRequest(device_id="42"), metadata=ann)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(error)] == ["device_id"]


async def test_another_user_sees_nothing_and_an_admin_sees_all(clients: Clients) -> None:
    ann, bob = await user(clients), await user(clients)
    device = await register(clients, ann)
    ident = device.device_id
    for call in (
        clients.devices.GetDevice(devices_pb2.GetDeviceRequest(device_id=ident), metadata=bob),
        clients.devices.UpdateDevice(
            devices_pb2.UpdateDeviceRequest(device_id=ident, name="mine"), metadata=bob
        ),
        clients.devices.DecommissionDevice(
            devices_pb2.DecommissionDeviceRequest(device_id=ident), metadata=bob
        ),
        clients.devices.IssueDeviceCredential(
            devices_pb2.IssueDeviceCredentialRequest(device_id=ident), metadata=bob
        ),
    ):
        error = await failure(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(error) == "DEVICE_NOT_FOUND"
    bobs = await clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bob)
    assert bobs.total_count == 0
    admin = await user(clients, admin=True)
    everything = await clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=admin)
    assert ident in {d.device_id for d in everything.devices}
    seen = await clients.devices.GetDevice(
        devices_pb2.GetDeviceRequest(device_id=ident), metadata=admin
    )
    assert seen.user_id == device.user_id


async def check(
    clients: Clients, token: str, device_id: str, access: str = "write"
) -> devices_pb2.DeviceAccess:
    return await clients.devices.CheckDeviceAccess(
        devices_pb2.CheckDeviceAccessRequest(device_id=device_id, access=access),
        metadata=bearer(token),
    )


async def test_device_credential_works_for_its_device_only(clients: Clients) -> None:
    ann = await user(clients)
    first, second = await register(clients, ann, name="A"), await register(clients, ann, name="B")
    issued = await clients.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=first.device_id, valid_days=30),
        metadata=ann,
    )
    assert (
        issued.token
        and issued.token_type == "bearer"
        and list(issued.scopes) == ["telemetry:write"]
    )
    assert issued.expires_at.seconds - issued.created_at.seconds == 30 * 24 * 3600
    allowed = await check(clients, issued.token, first.device_id)
    assert (allowed.allowed, allowed.owner_id, allowed.device_type) == (
        True,
        first.user_id,
        "temperature",
    )
    # Cacheable, for at most 30 s (telemetry also caps what it is given).
    assert allowed.ttl_seconds == 30
    other = await check(clients, issued.token, second.device_id)
    assert (other.allowed, other.reason) == (False, "not_found")
    read = await check(clients, issued.token, first.device_id, access="read")
    assert (read.allowed, read.reason) == (False, "missing_scope")
    # The device token is no user token: it cannot list or manage devices.
    error = await failure(
        clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=bearer(issued.token))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    shown = await clients.devices.GetDevice(
        devices_pb2.GetDeviceRequest(device_id=first.device_id), metadata=ann
    )
    assert shown.has_credential


async def test_a_credential_lasts_365_days_unless_asked_and_at_most_3650(
    clients: Clients,
) -> None:
    ann = await user(clients)
    device = await register(clients, ann)
    day = 24 * 3600
    for asked, lasts in ((0, 365), (3650, 3650)):
        issued = await clients.devices.IssueDeviceCredential(
            devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id, valid_days=asked),
            metadata=ann,
        )
        assert issued.expires_at.seconds - issued.created_at.seconds == lasts * day
        # The token itself, as auth signed it, lasts as long as the credential.
        claims = jwt.decode(issued.token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == lasts * day
    for asked in (3651, -1):
        error = await failure(
            clients.devices.IssueDeviceCredential(
                devices_pb2.IssueDeviceCredentialRequest(
                    device_id=device.device_id, valid_days=asked
                ),
                metadata=ann,
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert {v.field: v.message for v in violations_of(error)} == {
            "valid_days": "valid_days must be between 1 and 3650"
        }


async def test_rotation_and_revocation_invalidate_old_tokens(clients: Clients) -> None:
    ann = await user(clients)
    device = await register(clients, ann)
    request = devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id)
    old = await clients.devices.IssueDeviceCredential(request, metadata=ann)
    new = await clients.devices.IssueDeviceCredential(request, metadata=ann)
    assert (await check(clients, old.token, device.device_id)).reason == "credential_revoked"
    assert (await check(clients, new.token, device.device_id)).allowed
    revoked = await clients.devices.RevokeDeviceCredential(
        devices_pb2.RevokeDeviceCredentialRequest(device_id=device.device_id), metadata=ann
    )
    assert revoked.revoked == 1
    assert (await check(clients, new.token, device.device_id)).reason == "credential_revoked"
    again = await clients.devices.IssueDeviceCredential(request, metadata=ann)
    await clients.devices.DecommissionDevice(
        devices_pb2.DecommissionDeviceRequest(device_id=device.device_id), metadata=ann
    )
    assert (await check(clients, again.token, device.device_id)).reason == "not_found"


async def test_owner_access_checks(clients: Clients) -> None:
    ann, bob = await user(clients), await user(clients)
    device = await register(clients, ann)
    ann_token = ann[0][1].removeprefix("Bearer ")
    bob_token = bob[0][1].removeprefix("Bearer ")
    assert (await check(clients, ann_token, device.device_id, "read")).allowed
    assert (await check(clients, bob_token, device.device_id, "read")).reason == "not_found"
    await clients.devices.UpdateDevice(
        devices_pb2.UpdateDeviceRequest(device_id=device.device_id, status="inactive"), metadata=ann
    )
    assert (await check(clients, ann_token, device.device_id, "write")).reason == "inactive"
    assert (await check(clients, ann_token, device.device_id, "read")).allowed


async def service_token(clients: Clients, service: str) -> list[tuple[str, str]]:
    answer = await clients.auth.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(service=service, client_secret=PLACEHOLDER_SECRET)
    )
    return bearer(answer.token)


async def test_activity_from_telemetry_shows_on_the_device(clients: Clients) -> None:
    ann = await user(clients)
    device = await register(clients, ann)
    telemetry = await service_token(clients, "telemetry")
    for seconds, readings in ((2_000_000_000, 1000), (1_900_000_000, 500)):
        answer = await clients.devices.RecordDeviceActivity(
            devices_pb2.RecordDeviceActivityRequest(
                device_id=device.device_id,
                last_seen_at=timestamp_pb2.Timestamp(seconds=seconds),
                readings=readings,
            ),
            metadata=telemetry,
        )
        assert answer.recorded
    shown = await clients.devices.GetDevice(
        devices_pb2.GetDeviceRequest(device_id=device.device_id), metadata=ann
    )
    assert shown.readings_total == 1500
    assert shown.last_seen_at.seconds == 2_000_000_000  # never moves backwards
    # Only telemetry's service token may report activity.
    for who in (ann, await service_token(clients, "chat")):
        error = await failure(
            clients.devices.RecordDeviceActivity(
                devices_pb2.RecordDeviceActivityRequest(device_id=device.device_id, readings=1),
                metadata=who,
            )
        )
        assert error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


async def test_wrong_service_secret_is_refused(clients: Clients) -> None:
    error = await failure(
        clients.auth.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(service="telemetry", client_secret="guess")
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(error) == "INVALID_CLIENT"


async def test_events_follow_the_registry(clients: Clients) -> None:
    ann = await user(clients)
    device = await register(clients, ann)
    await clients.devices.UpdateDevice(
        devices_pb2.UpdateDeviceRequest(device_id=device.device_id, name="Renamed"), metadata=ann
    )
    await clients.devices.DecommissionDevice(
        devices_pb2.DecommissionDeviceRequest(device_id=device.device_id), metadata=ann
    )
    telemetry = await service_token(clients, "telemetry")
    answer = await clients.devices.ListDeviceEvents(
        devices_pb2.ListDeviceEventsRequest(), metadata=telemetry
    )
    mine = [e for e in answer.events if e.device_id == device.device_id]
    assert [e.kind for e in mine] == ["registered", "updated", "decommissioned"]
    later = await clients.devices.ListDeviceEvents(
        devices_pb2.ListDeviceEventsRequest(after_sequence=mine[1].sequence), metadata=telemetry
    )
    assert [e.kind for e in later.events if e.device_id == device.device_id] == ["decommissioned"]


async def test_activity_and_event_cursors_past_64_bits_are_answered_not_internal(
    clients: Clients,
) -> None:
    # Both are uint64 on the wire and signed 64-bit where they are kept: 2**63 and more
    # (or a counter summed past its end) raised OverflowError and answered INTERNAL.
    ann = await user(clients)
    device = await register(clients, ann)
    telemetry = await service_token(clients, "telemetry")

    async def report(readings: int) -> devices_pb2.RecordDeviceActivityResponse:
        return await clients.devices.RecordDeviceActivity(
            devices_pb2.RecordDeviceActivityRequest(device_id=device.device_id, readings=readings),
            metadata=telemetry,
        )

    error = await failure(report(2**64 - 1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(error)] == ["readings"]
    assert (await report(5)).recorded
    assert (await report(2**63 - 1)).recorded  # the counter stops at its largest value
    shown = await clients.devices.GetDevice(
        devices_pb2.GetDeviceRequest(device_id=device.device_id), metadata=ann
    )
    assert shown.readings_total == 2**63 - 1
    for cursor in (2**63 - 1, 2**63, 2**64 - 1):
        later = await clients.devices.ListDeviceEvents(
            devices_pb2.ListDeviceEventsRequest(after_sequence=cursor), metadata=telemetry
        )
        assert list(later.events) == []


async def test_import_csv_and_json_with_a_result_per_row(clients: Clients) -> None:
    ann = await user(clients)
    csv_content = (
        "name,type,latitude,longitude\n"
        "Boiler,temperature,45.1,7.6\n"
        ",pressure,,\n"
        "Door,motion,,\n"
        "Bad,sonar,100,0\n"
    )
    answer = await clients.devices.ImportDevices(
        devices_pb2.ImportDevicesRequest(format="csv", content=csv_content), metadata=ann
    )
    assert (answer.created, answer.rejected) == (2, 2)
    assert [r.status for r in answer.results] == ["created", "rejected", "created", "rejected"]
    assert [e.field for e in answer.results[1].errors] == ["name"]
    assert {e.field for e in answer.results[3].errors} == {"type", "location.latitude"}
    assert answer.results[0].device.location.latitude == 45.1
    json_content = (
        '[{"name": "Press", "type": "pressure", "location": {"latitude": 1, "longitude": 2}},'
        ' {"name": 5}]'
    )
    from_json = await clients.devices.ImportDevices(
        devices_pb2.ImportDevicesRequest(format="json", content=json_content), metadata=ann
    )
    assert (from_json.created, from_json.rejected) == (1, 1)
    listed = await clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=ann)
    assert listed.total_count == 3


@pytest.mark.parametrize(
    ("fmt", "content", "field"),
    [
        ("xml", "<devices/>", "format"),
        ("json", "{not json", "content"),
        ("json", '{"name": "x"}', "content"),
        ("csv", "colour,size\nred,big\n", "content"),
        ("csv", "name,type\n", "content"),
        ("json", "[" * 100_000 + "]" * 100_000, "content"),
        ("csv", "name,type\n" + "Pump,pressure\n" * 1001, "content"),
    ],
)
async def test_unusable_import_content_is_400(
    clients: Clients, fmt: str, content: str, field: str
) -> None:
    ann = await user(clients)
    error = await failure(
        clients.devices.ImportDevices(
            devices_pb2.ImportDevicesRequest(format=fmt, content=content), metadata=ann
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in violations_of(error)] == [field]


async def test_an_oversized_import_is_refused_before_it_is_parsed(clients: Clients) -> None:
    ann = await user(clients)
    million = "name,type\n" + "Pump,pressure\n" * 1_000_000
    error = await failure(
        clients.devices.ImportDevices(
            devices_pb2.ImportDevicesRequest(format="csv", content=million), metadata=ann
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.message) for v in violations_of(error)] == [
        ("content", "Content must be at most 1,048,576 characters (1 MiB)")
    ]
    many = [devices_pb2.RegisterDeviceRequest(name="Fan", type="motion")] * 1001
    error = await failure(
        clients.devices.ImportDevices(devices_pb2.ImportDevicesRequest(devices=many), metadata=ann)
    )
    assert [v.field for v in violations_of(error)] == ["devices"]
    listed = await clients.devices.ListDevices(devices_pb2.ListDevicesRequest(), metadata=ann)
    assert listed.total_count == 0


async def test_a_device_read_tells_its_credential_from_one_statement(clients: Clients) -> None:
    # GetDevice answers the device and its credential in one query: the credential must
    # count only while it works, and another user must learn nothing of either.
    ann = await user(clients)
    bob = await user(clients)
    device = await register(clients, ann)
    request = devices_pb2.GetDeviceRequest(device_id=device.device_id)
    assert not (await clients.devices.GetDevice(request, metadata=ann)).has_credential
    await clients.devices.IssueDeviceCredential(
        devices_pb2.IssueDeviceCredentialRequest(device_id=device.device_id), metadata=ann
    )
    shown = await clients.devices.GetDevice(request, metadata=ann)
    assert (shown.has_credential, shown.name) == (True, device.name)
    error = await failure(clients.devices.GetDevice(request, metadata=bob))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    await clients.devices.RevokeDeviceCredential(
        devices_pb2.RevokeDeviceCredentialRequest(device_id=device.device_id), metadata=ann
    )
    assert not (await clients.devices.GetDevice(request, metadata=ann)).has_credential
