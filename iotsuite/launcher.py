"""Start the whole suite on one machine: five services and the gateway.

``iot up`` (and so ``make run``) calls :func:`run_suite`. Every service and
the gateway runs as its own child process, exactly as it would in a container,
so the one-machine setup exercises the same process boundaries as a scaled-out
deployment. The launcher only supervises: it checks that the ports are free,
starts the children, waits until each one answers its health check, prints
where to reach them, restarts one that dies afterwards (with the same command
and environment, after a pause that grows while it keeps dying), and stops
them all, in order, on Ctrl-C or SIGTERM. A child that dies before the suite
is ready fails the start instead: that is a fault to fix, not to retry.

The launcher deliberately depends on nothing but the standard gRPC health
service and plain HTTP, not on generated code or on the rest of the kit, so
that it can explain a failure of any part of the suite instead of failing
with it.

With replicas (``iot up --replicas telemetry=2``, see :mod:`iotsuite.replicas`)
a service has several children, ``telemetry`` and ``telemetry-2``, each
supervised on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
import httpx
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iotkit.config import DEFAULT_METRICS_PORTS, SERVICES, Settings, metrics_variable, variable
from iotsuite.replicas import Layout, ReplicaError, plan

GATEWAY = "gateway"
"""Name of the REST gateway child; every other child is a gRPC service."""

STOP_MARGIN = 5.0
"""Seconds a child gets beyond its own drain grace before it is killed."""

PROBE_TIMEOUT = 1.0
"""Deadline of one health probe; short so that a hung child cannot stall the poll."""

PROBE_INTERVAL = 0.2
"""Pause between two rounds of health probes while waiting for readiness."""

RESTART_FIRST = 0.5
"""Seconds before restarting a child that died; doubled each time it dies again."""

RESTART_MAX = 30.0
"""Longest pause before a restart."""

RESTART_RESET = 60.0
"""A child that ran this many seconds before dying is restarted after :data:`RESTART_FIRST`."""

Commands = Mapping[str, Sequence[str]]
"""Child name (a service of :data:`~iotkit.config.SERVICES` or ``gateway``) to its argv."""

LISTEN = variable("listen_addr")
"""Tells each service child where it listens itself (a replica among its service's)."""

# Reconnect quickly while a service is still starting: gRPC's default backoff
# grows past several seconds, which would delay "ready" long after it is true.
_PROBE_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

# Wildcard listen addresses cannot be dialled; probe them on loopback instead.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "localhost", "": "127.0.0.1"}


class LaunchError(Exception):
    """The suite cannot start or keep running; the message says which part and why."""


def default_commands(python: str = sys.executable) -> dict[str, list[str]]:
    """The real suite: ``python -m services.<name>`` for each service, then the gateway."""
    commands = {name: [python, "-m", f"services.{name}"] for name in SERVICES}
    commands[GATEWAY] = [python, "-m", "gateway"]
    return commands


def with_metrics_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with each process's ``/metrics`` address at its default port on loopback,
    where the variable is absent: ``iot up`` serves metrics unless told otherwise, and a
    variable set empty turns one process's off."""
    env = dict(environ)
    for name, port in DEFAULT_METRICS_PORTS.items():
        env.setdefault(metrics_variable(name), f"127.0.0.1:{port}")
    return env


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 hosts in brackets) into host and port."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise LaunchError(f"address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def dial_host(host: str) -> str:
    """A host to connect to for a listener on ``host`` (wildcards become loopback)."""
    host = _WILDCARDS.get(host, host)
    return f"[{host}]" if ":" in host else host


def gateway_url(settings: Settings) -> str:
    """The URL where the gateway answers, as a person would type it."""
    return f"http://{dial_host(settings.gateway_host)}:{settings.gateway_port}"


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now, or None when it can.

    A trial bind is the only reliable test: a connect would also succeed
    against a listener that merely shares the port. gRPC servers set
    SO_REUSEPORT, so a second copy of the suite would otherwise bind the same
    ports silently and the health probes would be answered by the first copy.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    errors: list[OSError] = []
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # SO_REUSEADDR so that sockets in TIME_WAIT from a previous run do
            # not count as taken; a live listener still refuses the bind.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "address already in use (is another copy of the suite running?)"
                errors.append(exc)
    if errors and len(errors) == len(infos):
        return f"cannot listen there: {errors[0].strerror}"
    return None


def _exit_description(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _say(message: str) -> None:
    # The launcher's own messages go to stderr, beside the children's JSON
    # log lines, and stay plain text so that a person spots them.
    print(f"iot: {message}", file=sys.stderr, flush=True)


class _Backoff:
    """The pauses before the restarts of one child: doubling, reset by a long run."""

    def __init__(self) -> None:
        self.pause = RESTART_FIRST

    def after(self, ran: float) -> float:
        """The pause before the next restart of a child that ran ``ran`` seconds."""
        if ran >= RESTART_RESET:
            self.pause = RESTART_FIRST
        pause = self.pause
        self.pause = min(pause * 2, RESTART_MAX)
        return pause


@dataclass(slots=True)
class _Child:
    """One running child process and the task that reaps it."""

    name: str
    argv: Sequence[str]
    process: asyncio.subprocess.Process
    exited: asyncio.Task[int] = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.ensure_future(self.process.wait())
        self.started = time.monotonic()

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def signal_group(self, signum: signal.Signals) -> None:
        """Signal the child's whole process group, so that its helpers stop too."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


class _Probe:
    """Answers whether one child is ready, and why not."""

    def __init__(self, name: str, target: str, *, gateway: bool) -> None:
        self.name = name
        self.target = target
        self.gateway = gateway
        self.last = "no answer yet"
        self._channel: aio.Channel | None = None
        self._http: httpx.AsyncClient | None = None

    async def ready(self) -> bool:
        """One probe with a short deadline; remembers the reason when not ready."""
        if self.gateway:
            return await self._http_ready()
        return await self._grpc_ready()

    async def _grpc_ready(self) -> bool:
        if self._channel is None:
            self._channel = aio.insecure_channel(self.target, options=_PROBE_CHANNEL_OPTIONS)
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            # Service "" is the server as a whole: SERVING once it has started.
            request = health_pb2.HealthCheckRequest(service="")
            reply = await stub.Check(request, timeout=PROBE_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            self.last = f"{exc.code().name}: {exc.details()}"
            return False
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return True
        self.last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return False

    async def _http_ready(self) -> bool:
        if self._http is None:
            # trust_env=False: a proxy from the environment must not see loopback probes.
            self._http = httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False)
        try:
            response = await self._http.get(self.target)
        except httpx.HTTPError as exc:
            self.last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return False
        if response.status_code == 200:
            return True
        self.last = f"HTTP {response.status_code}"
        return False

    async def close(self) -> None:
        """Release the probe's channel or HTTP client."""
        if self._channel is not None:
            await self._channel.close()
        if self._http is not None:
            await self._http.aclose()


class _Suite:
    """The state of one run: settings, children, and how to stop them."""

    def __init__(
        self,
        settings: Settings,
        commands: Commands,
        *,
        layout: Layout,
        env: Mapping[str, str],
        kill_after: float,
        stop: asyncio.Event,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        # Variables only the children of one service get (the broker's administrator).
        self.service_env = service_env or {}
        self.commands = commands
        self.layout = layout
        self.env = dict(env)
        # Each service child gets its own; one inherited would make them all listen there.
        self.env.pop(LISTEN, None)
        # Children's log lines must reach the terminal as they happen, even
        # when the launcher's output is a pipe (make, tee, docker logs).
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.kill_after = kill_after
        self.stop = stop
        self.children: dict[str, _Child] = {}
        # Set once the run ends, however it ends: no child is restarted after it.
        self.ending = asyncio.Event()
        self.keepers: list[asyncio.Task[None]] = []

    def listen_address(self, name: str) -> tuple[str, int]:
        if name == GATEWAY:
            return self.settings.gateway_host, self.settings.gateway_port
        return split_address(self.layout.address_of(name))

    def probe_for(self, name: str) -> _Probe:
        host, port = self.listen_address(name)
        if name == GATEWAY:
            return _Probe(name, f"http://{dial_host(host)}:{port}/healthz", gateway=True)
        return _Probe(name, f"{dial_host(host)}:{port}", gateway=False)

    def check_ports(self) -> None:
        """Refuse to start when two children (or their ``/metrics``) share a port or a port
        is taken."""
        seen: dict[tuple[str, int], str] = {}
        listeners = [(name, self.listen_address(name)) for name in self.commands]
        listeners += [
            (f"{name} metrics", split_address(address))
            for name in self.commands
            if (address := self.layout.metrics_address(self.settings, name))
        ]
        for name, (host, port) in listeners:
            if (host, port) in seen:
                raise LaunchError(
                    f"{seen[host, port]} and {name} are both configured for {host}:{port}"
                )
            seen[host, port] = name
            problem = port_problem(host, port)
            if problem:
                raise LaunchError(f"cannot start {name} on {host}:{port}: {problem}")

    async def start(self, names: Sequence[str]) -> None:
        for name in names:
            await self._spawn(name)

    async def _spawn(self, name: str) -> None:
        argv = list(self.commands[name])
        env = (
            self.env
            if name == GATEWAY
            else {
                **self.env,
                **self.layout.own_variables(self.settings, name),
                **self.service_env.get(self.layout.replica_of(name)[0], {}),
            }
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                # Own process group: a Ctrl-C in the terminal reaches only the
                # launcher, which then stops the children in a safe order.
                process_group=0,
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {name} ({' '.join(argv)}): {exc}") from exc
        self.children[name] = _Child(name, argv, process)

    def _first_exited(self) -> _Child | None:
        for child in self.children.values():
            if not child.running:
                return child
        return None

    async def wait_ready(self, names: Sequence[str], deadline: float) -> bool:
        """Poll until every child in ``names`` is ready; False when a stop was asked.

        Raises :class:`LaunchError` when a child exits or the deadline passes.
        """
        probes = [self.probe_for(name) for name in names]
        pending = list(probes)
        try:
            while pending:
                if self.stop.is_set():
                    return False
                crashed = self._first_exited()
                if crashed is not None:
                    raise LaunchError(
                        f"{crashed.name} exited during start-up "
                        f"({_exit_description(crashed.process.returncode or 0)}); see its log above"
                    )
                if time.monotonic() >= deadline:
                    late = ", ".join(f"{p.name} at {p.target} ({p.last})" for p in pending)
                    raise LaunchError(f"not ready in time: {late}")
                results = await asyncio.gather(*(probe.ready() for probe in pending))
                pending = [probe for probe, ok in zip(pending, results, strict=True) if not ok]
                if pending:
                    # Sleep, but wake at once for a stop request or a dying child.
                    waiters = [c.exited for c in self.children.values() if c.running]
                    stop_wait = asyncio.ensure_future(self.stop.wait())
                    try:
                        await asyncio.wait([stop_wait, *waiters], timeout=PROBE_INTERVAL)
                    finally:
                        stop_wait.cancel()
            return True
        finally:
            for probe in probes:
                await probe.close()

    def supervise(self) -> None:
        """Keep every child running from now on, until :meth:`settle`."""
        self.keepers = [asyncio.create_task(self._keep(name)) for name in self.children]

    async def settle(self) -> None:
        """End the supervision: no restart is under way or will start afterwards."""
        self.ending.set()
        await asyncio.gather(*self.keepers, return_exceptions=True)

    async def _keep(self, name: str) -> None:
        backoff = _Backoff()
        while True:
            child = self.children[name]
            ending = asyncio.ensure_future(self.ending.wait())
            try:
                await asyncio.wait([child.exited, ending], return_when=asyncio.FIRST_COMPLETED)
            finally:
                ending.cancel()
            if self.ending.is_set():
                return
            # Helpers the dead child left in its group could hold its port.
            child.signal_group(signal.SIGKILL)
            pause = backoff.after(time.monotonic() - child.started)
            status = _exit_description(child.process.returncode or 0)
            _say(f"{name} exited unexpectedly ({status}); restarting it in {pause:g}s")
            while True:
                if await self._ends_within(pause):
                    return
                try:
                    await self._spawn(name)
                    break
                except LaunchError as exc:
                    pause = backoff.after(0.0)
                    _say(f"{exc}; trying again in {pause:g}s")

    async def _ends_within(self, seconds: float) -> bool:
        """Pause ``seconds``; True when the run ended meanwhile."""
        try:
            await asyncio.wait_for(self.ending.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def shutdown(self) -> None:
        """Stop the gateway first, then every service, each with SIGTERM then SIGKILL.

        The gateway goes first so that it does not send new calls to services
        that are draining; services then drain in parallel.
        """
        gateway = [c for name, c in self.children.items() if name == GATEWAY]
        services = [c for name, c in self.children.items() if name != GATEWAY]
        for wave in (gateway, services):
            await self._stop_wave(wave)

    async def _stop_wave(self, children: Sequence[_Child]) -> None:
        alive = [child for child in children if child.running]
        for child in alive:
            child.signal_group(signal.SIGTERM)
        if alive:
            _, late = await asyncio.wait([c.exited for c in alive], timeout=self.kill_after)
            for child in alive:
                if child.exited in late:
                    _say(f"{child.name} did not stop within {self.kill_after:g}s; killing it")
                    child.signal_group(signal.SIGKILL)
            if late:
                await asyncio.wait(late)
        for child in children:
            # The leader is gone; anything it left in its group (workers,
            # helpers) would be orphaned holding ports, so end it too.
            child.signal_group(signal.SIGKILL)


def _ready_banner(
    settings: Settings, layout: Layout, names: Sequence[str], notes: Sequence[str] = ()
) -> str:
    lines = ["iotsuite is ready"]
    if GATEWAY in names:
        lines[0] += f": {gateway_url(settings)}"
    width = max(len(name) for name in names)
    lines += [f"  {name:<{width}}  {layout.address_of(name)}" for name in names if name != GATEWAY]
    # Where a person can look at each process's metrics (loopback for a wildcard listener).
    served = [
        (name, address) for name in names if (address := layout.metrics_address(settings, name))
    ]
    lines += [
        f"  {name:<{width}}  metrics http://{dial_host(host)}:{port}/metrics"
        for name, (host, port) in ((name, split_address(a)) for name, a in served)
    ]
    # Programs started elsewhere (iot simulate, devices) reach every replica only when told.
    lists = {
        variable(f"{service}_addr"): listed
        for service, listed in layout.addresses().items()
        if "," in listed
    }
    if lists:
        lines.append("Other programs reach every replica with:")
        lines += [f"  export {name}={listed}" for name, listed in lists.items()]
    lines += notes
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


async def run_suite(
    settings: Settings,
    *,
    commands: Commands | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
    kill_after: float | None = None,
    on_ready: Callable[[str], object] = print,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    replicas: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
    service_env: Mapping[str, Mapping[str, str]] | None = None,
) -> int:
    """Run the suite until asked to stop; answers the exit status for ``iot up``.

    ``commands`` maps each child's name to its argv (default: the real five
    services and the gateway run with ``python``); services are probed at
    ``settings.address(name)`` with the gRPC health service, the gateway at
    ``GET /healthz``. Children inherit ``env`` (default: this process's
    environment). Once all are ready, ``on_ready`` gets a short text with the
    gateway URL and every service address.

    A child that exits once the suite is ready is restarted, with the same
    argv and environment, after a pause of :data:`RESTART_FIRST` seconds that
    doubles each time it dies again (up to :data:`RESTART_MAX`; back to the
    first after a run of :data:`RESTART_RESET`); each restart is one line on
    stderr with the exit status, and the other children keep running.

    The run ends on SIGINT/SIGTERM (when ``handle_signals``), when ``stop`` is
    set, or when the task is cancelled, and answers 0; when a port is taken, a
    child exits during start-up, or the suite is not ready within
    ``ready_timeout`` seconds, it says which child and answers 1. Either way
    nothing is restarted any more and every child is stopped: SIGTERM, then
    SIGKILL after ``kill_after`` seconds (default: the drain grace plus
    :data:`STOP_MARGIN`).

    ``replicas`` asks for several children of some services (service to count;
    see :mod:`iotsuite.replicas`), each on its own port, every child dialling
    all of them; a list of addresses in ``IOT_<SERVICE>_ADDR`` does the same.
    Replicas that cannot run (SQLite, chat) fail the run with the reason.
    ``notes`` are lines for the ready banner (whether MQTT ingest is on);
    ``service_env`` variables only the children of one service get (service to
    variables), on top of ``env``.
    """
    commands = default_commands(python) if commands is None else commands
    unknown = [name for name in commands if name != GATEWAY and name not in SERVICES]
    if unknown:
        raise ValueError(f"unknown children {unknown}; expected names from {(*SERVICES, GATEWAY)}")
    try:
        layout = plan(settings, replicas or {})
    except ReplicaError as exc:
        _say(str(exc))
        return 1
    settings = settings.model_copy(update={"addresses": layout.addresses()})
    commands = {
        child: argv
        for name, argv in commands.items()
        for child in ([name] if name == GATEWAY else layout.children(name))
    }
    stop = asyncio.Event() if stop is None else stop
    suite = _Suite(
        settings,
        commands,
        layout=layout,
        env={**(os.environ if env is None else env), **layout.variables()},
        kill_after=settings.grace_seconds + STOP_MARGIN if kill_after is None else kill_after,
        stop=stop,
        service_env=service_env,
    )
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    # Services first, all at once; the gateway only once they answer, so that
    # its own health check and first requests find them.
    services = [name for name in commands if name != GATEWAY]
    gateways = [name for name in commands if name == GATEWAY]
    try:
        suite.check_ports()
        deadline = time.monotonic() + ready_timeout
        for group in (services, gateways):
            await suite.start(group)
            if not await suite.wait_ready(group, deadline):
                return 0
        on_ready(_ready_banner(settings, layout, list(commands), notes))
        suite.supervise()
        await stop.wait()
        return 0
    except LaunchError as exc:
        _say(str(exc))
        if suite.children:
            _say("stopping the others")
        return 1
    finally:
        # Also runs on cancellation: awaiting here is allowed once the
        # CancelledError is being propagated, and children must not outlive us.
        if stop.is_set() and suite.children:
            _say("stopping")
        await suite.settle()
        await suite.shutdown()
        for signum in handled:
            loop.remove_signal_handler(signum)
