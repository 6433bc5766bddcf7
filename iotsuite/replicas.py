"""Replicas under ``iot up``: which children run, where each listens, what all of them dial.

``iot up --replicas telemetry=2,analytics=2`` runs two processes of each of
those services. Replica n (from 1) listens on its service's host, at the
service's port plus 10 * (n - 1): telemetry's replicas on 50053 and 50063,
analytics' on 50054 and 50064 by default. The five services' ports differ in
their last digit, so replicas of different services never meet (up to ten
each). Every child is told every replica's address, comma-separated in
``IOT_<SERVICE>_ADDR``, so that gRPC spreads its calls over them
(``round_robin``); each replica is told where it listens itself in
``IOT_LISTEN_ADDR``. A list already in ``IOT_<SERVICE>_ADDR`` starts a
replica per address without ``--replicas``. Metrics follow the same rule: replica
n serves ``/metrics`` at its service's metrics port plus 10 * (n - 1), told in
its own ``IOT_<SERVICE>_METRICS_ADDR``.

Replicas need PostgreSQL (``IOT_DATABASE_URL``): SQLite has one writer per
file, and what replicas share (chunk positions, analysed positions, the email
outbox) is locked in the database, not in a process; auth's replicas also
need Redis (``IOT_REDIS_URL``), where login failures and rate limits are
counted for all of them. Chat keeps no replicas:
a session's live events are fanned out inside its process, so a reply written
by one replica would not reach a watcher of another.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

from iotkit.config import SERVICES, Settings, metrics_variable, split_addresses, variable

PORT_STEP = 10
"""How far apart in port numbers a service's replicas listen."""

MAX_REPLICAS = 10
"""The most replicas of a service: beyond, replicas' ports would meet another service's."""

SINGLE = ("chat",)
"""Services that run one process only (see the module docstring)."""


class ReplicaError(ValueError):
    """The replicas asked for cannot run; the message says why."""


def parse_replicas(text: str) -> dict[str, int]:
    """``telemetry=2,analytics=2`` as counts by service (``argparse`` type of ``--replicas``)."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        service, sep, count = item.partition("=")
        service = service.strip()
        if not sep or not count.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{item!r} is not SERVICE=COUNT")
        if service not in SERVICES:
            raise argparse.ArgumentTypeError(f"unknown service {service!r}")
        if not 1 <= int(count) <= MAX_REPLICAS:
            raise argparse.ArgumentTypeError(
                f"{service}: between 1 and {MAX_REPLICAS} replicas, not {count.strip()}"
            )
        counts[service] = int(count)
    return counts


def child_name(service: str, replica: int) -> str:
    """The launcher's name for replica ``replica`` (from 1) of ``service``."""
    return service if replica == 1 else f"{service}-{replica}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where every service child listens, and the addresses all children dial."""

    listen: dict[str, dict[str, str]]
    """Service -> child name -> its ``host:port``, replica 1 first."""

    def addresses(self) -> dict[str, str]:
        """``IOT_<SERVICE>_ADDR`` of each service: every replica, comma-separated."""
        return {service: ",".join(children.values()) for service, children in self.listen.items()}

    def variables(self) -> dict[str, str]:
        """The environment every child gets: each service's addresses."""
        return {variable(f"{name}_addr"): listed for name, listed in self.addresses().items()}

    def children(self, service: str) -> list[str]:
        """The names of ``service``'s children."""
        return list(self.listen[service])

    def replica_of(self, child: str) -> tuple[str, int]:
        """The service of the service child ``child``, and which replica (from 1) it is."""
        for service, children in self.listen.items():
            if child in children:
                return service, list(children).index(child) + 1
        raise KeyError(child)

    def metrics_address(self, settings: Settings, child: str) -> str | None:
        """Where ``child`` (a service child or the gateway) serves ``/metrics``, or None:
        its service's metrics port, plus PORT_STEP for each replica before it."""
        if child not in {c for children in self.listen.values() for c in children}:
            return settings.metrics_address(child)
        service, replica = self.replica_of(child)
        base = settings.metrics_address(service)
        if base is None or replica == 1:
            return base
        host, _, port = base.rpartition(":")
        return f"{host}:{int(port) + PORT_STEP * (replica - 1)}"

    def own_variables(self, settings: Settings, child: str) -> dict[str, str]:
        """What only the service child ``child`` is told: where it listens, and where it
        serves its metrics (when its service's are on)."""
        service, _ = self.replica_of(child)
        own = {variable("listen_addr"): self.address_of(child)}
        metrics = self.metrics_address(settings, child)
        if metrics is not None:
            own[metrics_variable(service)] = metrics
        return own

    def address_of(self, child: str) -> str:
        """Where the service child ``child`` listens."""
        for children in self.listen.values():
            if child in children:
                return children[child]
        raise KeyError(child)


def plan(settings: Settings, replicas: Mapping[str, int]) -> Layout:
    """The children of ``services`` with ``replicas`` of each asked for (default: one, or
    one per address listed in its ``IOT_<SERVICE>_ADDR``)."""
    listen: dict[str, dict[str, str]] = {}
    several = []
    for service in SERVICES:
        configured = split_addresses(settings.address(service))
        count = replicas.get(service, 1)
        if count > 1 and len(configured) > 1:
            raise ReplicaError(
                f"{variable(f'{service}_addr')} already lists {len(configured)} addresses; "
                f"give either that list or --replicas {service}=N"
            )
        if count > 1:
            host, _, port = configured[0].rpartition(":")
            if not port.isdigit():
                raise ReplicaError(f"{variable(f'{service}_addr')} has no port to count from")
            configured = tuple(f"{host}:{int(port) + PORT_STEP * n}" for n in range(count))
        listen[service] = {
            child_name(service, n + 1): address for n, address in enumerate(configured)
        }
        if len(configured) > 1:
            several.append(service)
    for service in several:
        if service in SINGLE:
            raise ReplicaError(
                f"{service} runs as one process: a session's live events stay in its process"
            )
    if "auth" in several and not settings.redis_url:
        raise ReplicaError(
            "replicas of auth need Redis (set IOT_REDIS_URL): without it each would count "
            "login failures and rate limits on its own, letting through N times as many"
        )
    if several and not settings.database_url:
        raise ReplicaError(
            f"replicas of {', '.join(several)} need PostgreSQL (set IOT_DATABASE_URL): SQLite "
            "has one writer per file, and replicas share their locks through the database"
        )
    return Layout(listen)
