"""The system status logic on domain values: no gRPC, probes stand in for the processes."""

from __future__ import annotations

from datetime import UTC, datetime

from services.auth.system.service import (
    NO_API,
    Dependency,
    Probe,
    ProcessReport,
    SystemStatusService,
    Undiagnosable,
    Unreachable,
)

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def report(service: str, *, apis: tuple[str, ...], database: str = "healthy") -> ProcessReport:
    checks = (
        Dependency(name="database", service=service, status=database),
        Dependency(name="storage", service=service, status="healthy"),
        Dependency(name="email", service=service, status="healthy"),
    )
    return ProcessReport(
        service=service,
        version="0",
        uptime_seconds=1.0,
        dependencies=checks,
        total_requests=10,
        error_requests=1,
        apis=apis,
    )


def answers(value: ProcessReport) -> Probe:
    async def probe() -> ProcessReport:
        return value

    return probe


def fails(error: type[Exception]) -> Probe:
    async def probe() -> ProcessReport:
        raise error

    return probe


async def no_users() -> int:
    return 3


def status_service(**remotes: Probe) -> SystemStatusService:
    return SystemStatusService(
        local=answers(report("auth", apis=("iot.auth.v1.AuthService",))),
        remotes=remotes,
        active_users=no_users,
        clock=lambda: AT,
    )


async def test_a_service_without_an_api_is_no_api_and_keeps_the_suite_healthy() -> None:
    status = await status_service(
        devices=answers(report("devices", apis=("iot.devices.v1.DeviceService",))),
        chat=answers(report("chat", apis=())),
    ).status()
    states = {s.service: s.status for s in status.service_states}
    assert states == {"auth": "healthy", "devices": "healthy", "chat": NO_API}
    assert status.status == "healthy" and status.at == AT
    assert status.total_requests == 30 and status.error_rate == round(3 / 30, 6)
    assert status.active_users == 3


async def test_unreachable_is_down_and_undiagnosable_degraded() -> None:
    status = await status_service(
        devices=fails(Unreachable), telemetry=fails(Undiagnosable)
    ).status()
    states = {s.service: s.status for s in status.service_states}
    assert states == {"auth": "healthy", "devices": "down", "telemetry": "degraded"}
    assert status.status == "degraded"


async def test_auths_database_down_is_the_suite_down() -> None:
    service = SystemStatusService(
        local=answers(report("auth", apis=("iot.auth.v1.AuthService",), database="down")),
        remotes={},
        active_users=no_users,
    )
    status = await service.status()
    assert status.status == "down" and status.components["database"] == "down"
