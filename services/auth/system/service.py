"""The suite's status, aggregated by the auth process from every process's diagnostics.

Auth hosts it because auth is the service every other depends on and it can
mint the short-lived service token that the other processes' diagnostics
require. Each other service is probed for its health and its own dependency
checks (``probes.py`` makes those calls); unreachable ones are down.

Each service is reported by what it serves: its diagnostics list its APIs,
and one that answers but serves no API of its own (only health, reflection
and diagnostics) is ``no_api`` rather than healthy. Such a service takes
nothing away from the suite, so it does not lower the overall status; once
it serves an API it is judged like the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from iotkit.checks import DEGRADED, DOWN, HEALTHY
from iotkit.sqltypes import utcnow

_RANK = {HEALTHY: 0, DEGRADED: 1, DOWN: 2}

NO_API = "no_api"
"""The state of a service that is up but serves no API of its own."""
NO_API_MESSAGE = "Serves no API of its own (only health and diagnostics)"
UNREACHABLE_MESSAGE = "Not reachable or not serving"
NO_DIAGNOSTICS_MESSAGE = "Serving, but its diagnostics could not be read"


@dataclass(frozen=True, slots=True)
class Dependency:
    """One dependency of one process (its database, Redis, storage, mail) as it checked it."""

    name: str
    service: str
    status: str
    detail: str = ""
    latency_ms: float = 0.0
    optional: bool = False
    """The process serves all it offers without it."""


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """What one service process reports of itself through its diagnostics."""

    service: str
    version: str
    uptime_seconds: float
    dependencies: tuple[Dependency, ...]
    total_requests: int
    error_requests: int
    apis: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One service as the status sees it: its state, the APIs it serves, why it is not healthy."""

    service: str
    status: str
    apis: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class SystemReport:
    """The status of the whole suite at one moment."""

    status: str
    at: datetime
    uptime_seconds: float
    components: Mapping[str, str]
    """State of each component (database, storage, email, cache, analytics_engine) and service."""
    active_users: int
    total_requests: int
    error_rate: float
    dependencies: tuple[Dependency, ...]
    service_states: tuple[ServiceState, ...]


class Unreachable(Exception):
    """A probed service does not answer, or does not report SERVING."""


class Undiagnosable(Exception):
    """A probed service is serving but its diagnostics could not be read."""


Probe = Callable[[], Awaitable[ProcessReport]]
"""Asks one process for its report; raises :class:`Unreachable` or :class:`Undiagnosable`."""


def worst(states: Sequence[str]) -> str:
    """The worst of several states; healthy when there are none."""
    return max(states, key=_RANK.__getitem__, default=HEALTHY)


def combined(states: Sequence[str]) -> str:
    """Healthy if all are, down if all are, degraded otherwise."""
    if not states or all(s == HEALTHY for s in states):
        return HEALTHY
    if all(s == DOWN for s in states):
        return DOWN
    return DEGRADED


def dependency_effect(dependency: Dependency) -> str:
    """What a dependency's state does to its process: a database that is down takes the
    whole process down; any other dependency that is down takes away only what needs
    it (degraded); an optional one takes nothing away."""
    if dependency.optional or dependency.status == HEALTHY:
        return HEALTHY
    if dependency.status == DOWN and dependency.name != "database":
        return DEGRADED
    return dependency.status


def service_state(service: str, process: ProcessReport) -> ServiceState:
    """A service that answered its diagnostics: what its dependencies take away from it,
    or no_api when they are fine and it serves nothing of its own."""
    failing = [d for d in process.dependencies if d.status != HEALTHY]
    if not failing and not process.apis:
        return ServiceState(service=service, status=NO_API, message=NO_API_MESSAGE)
    return ServiceState(
        service=service,
        status=worst([dependency_effect(d) for d in failing]),
        apis=process.apis,
        message=", ".join(
            f"{d.name} {d.status}" + (" (not needed)" if d.optional else "") for d in failing
        ),
    )


async def _active_users(count: Callable[[], Awaitable[int]]) -> int:
    """The count of users with a live session, or 0 when auth's database cannot tell
    (the database's own entry says it is down)."""
    try:
        return await count()
    except Exception:  # the status answers whatever is down, never an error
        return 0


class SystemStatusService:
    """Aggregates every process's health and diagnostics into one status."""

    def __init__(
        self,
        *,
        local: Probe,
        remotes: Mapping[str, Probe],
        active_users: Callable[[], Awaitable[int]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._local = local
        self._remotes = dict(remotes)
        self._active_users = active_users
        self._clock = clock
        self._started = time.monotonic()

    @staticmethod
    async def _remote(service: str, probe: Probe) -> tuple[ServiceState, ProcessReport | None]:
        """A remote service's state and, when it answers, its report."""
        try:
            process = await probe()
        except Unreachable:
            return ServiceState(service=service, status=DOWN, message=UNREACHABLE_MESSAGE), None
        except Undiagnosable:
            # Serving but not answering diagnostics: e.g. it cannot verify tokens yet.
            state = ServiceState(service=service, status=DEGRADED, message=NO_DIAGNOSTICS_MESSAGE)
            return state, None
        return service_state(service, process), process

    async def status(self) -> SystemReport:
        """Check everything now and answer the suite's status."""
        remote, local, active_users = await asyncio.gather(
            asyncio.gather(*(self._remote(name, probe) for name, probe in self._remotes.items())),
            self._local(),
            _active_users(self._active_users),
        )
        service_states = [service_state("auth", local)]
        processes = [local]
        for state, process in remote:
            service_states.append(state)
            if process is not None:
                processes.append(process)
        states = {state.service: state.status for state in service_states}
        dependencies = [d for p in processes for d in p.dependencies]

        def kind(name: str) -> list[str]:
            return [d.status for d in dependencies if d.name == name]

        components = {
            "database": combined(kind("database")),
            "storage": worst(kind("storage")) if kind("storage") else DOWN,
            "email": worst(kind("email")) if kind("email") else DOWN,
            "cache": worst(kind("cache")),
            "analytics_engine": states.get("analytics", DOWN),
            **states,
        }
        total = sum(p.total_requests for p in processes)
        errors = sum(p.error_requests for p in processes)
        auth_db_down = any(d.status == DOWN for d in local.dependencies if d.name == "database")
        # A service with no API of its own is up and takes nothing away from the suite.
        serving = [state for state in states.values() if state != NO_API]
        stores = ("database", "storage", "email", "cache")
        every_state = [*serving, *(components[name] for name in stores)]
        overall = (
            DOWN
            if auth_db_down
            else HEALTHY
            if all(s == HEALTHY for s in every_state)
            else DEGRADED
        )
        return SystemReport(
            status=overall,
            at=self._clock(),
            uptime_seconds=round(time.monotonic() - self._started, 3),
            components=components,
            active_users=active_users,
            total_requests=total,
            error_rate=round(errors / total, 6) if total else 0.0,
            dependencies=(
                *dependencies,
                *(
                    Dependency(name=name, service=name, status=state, detail="grpc")
                    for name, state in states.items()
                ),
            ),
            service_states=tuple(service_states),
        )
