"""The launcher behind ``iot up``, driven with fake services on free ports.

The fakes under ``tests/fakes/`` stand in for the real processes: a tiny gRPC
server with only the health service per service, and a stdlib HTTP server
for the gateway. They write their pids so that the tests can check that no
child outlives the launcher.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from iotkit.config import SERVICES, Settings, load_settings
from iotsuite import cli, launcher, replicas
from iotsuite.launcher import (
    GATEWAY,
    default_commands,
    dial_host,
    gateway_url,
    port_problem,
    run_suite,
    split_address,
)
from tests.support import free_port

FAKES = Path(__file__).parent / "fakes"
PYTHON = sys.executable


def fake_commands(**overrides: list[str]) -> dict[str, list[str]]:
    """Fake argv for every child; ``overrides`` replaces some by name."""
    commands = {name: [PYTHON, str(FAKES / "health_server.py"), name] for name in SERVICES}
    commands[GATEWAY] = [PYTHON, str(FAKES / "fake_gateway.py")]
    commands.update(overrides)
    return commands


@dataclass
class Suite:
    """What a test needs to run the launcher against the fakes."""

    settings: Settings
    env: dict[str, str]
    pid_dir: Path

    def pids(self) -> dict[str, int]:
        """The pid of every fake that got as far as starting."""
        return {p.stem: int(p.read_text()) for p in self.pid_dir.glob("*.pid")}

    async def run(
        self,
        commands: Mapping[str, list[str]] | None = None,
        *,
        on_ready: Callable[[str], object] = print,
        stop: asyncio.Event | None = None,
        handle_signals: bool = False,
        ready_timeout: float = 30.0,
        kill_after: float | None = None,
        replicas: Mapping[str, int] | None = None,
    ) -> asyncio.Task[int]:
        """Start the launcher on the fakes (or on ``commands``) in a task."""
        coroutine = run_suite(
            self.settings,
            commands=fake_commands() if commands is None else commands,
            env=self.env,
            on_ready=on_ready,
            stop=stop,
            handle_signals=handle_signals,
            ready_timeout=ready_timeout,
            kill_after=kill_after,
            replicas=replicas,
        )
        return asyncio.create_task(coroutine)


@pytest.fixture
def suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Suite]:
    """Settings and environment for the fakes, on free ports, in a temporary directory."""
    monkeypatch.chdir(tmp_path)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    overrides = {f"IOT_{name.upper()}_ADDR": f"127.0.0.1:{free_port()}" for name in SERVICES}
    overrides |= {
        "IOT_GATEWAY_HOST": "127.0.0.1",
        "IOT_GATEWAY_PORT": str(free_port()),
        "IOT_GRACE_SECONDS": "0.5",
        "IOT_DATA_DIR": str(tmp_path / "data"),
        "FAKE_PID_DIR": str(pid_dir),
    }
    env = {**os.environ, **overrides}
    yield Suite(load_settings(env), env, pid_dir)


def alive(pid: int) -> bool:
    """True while a process with this pid exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_all_gone(pids: Mapping[str, int]) -> None:
    left = [name for name, pid in pids.items() if alive(pid)]
    assert not left, f"children left running: {left}"


class Ready:
    """An ``on_ready`` callback that remembers the banner and wakes the test."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.text = ""

    def __call__(self, text: str) -> None:
        self.text = text
        self.event.set()

    async def wait(self, task: asyncio.Task[int], timeout: float = 30.0) -> None:
        """Wait for the banner, failing early if the launcher ends first."""
        waiter = asyncio.ensure_future(self.event.wait())
        done, _ = await asyncio.wait([waiter, task], timeout=timeout, return_when="FIRST_COMPLETED")
        waiter.cancel()
        assert self.event.is_set(), f"launcher not ready (finished: {task in done})"


async def test_reports_ready_and_sigterm_stops_every_child(suite: Suite) -> None:
    ready = Ready()
    task = await suite.run(on_ready=ready, handle_signals=True)
    await ready.wait(task)

    assert ready.text.splitlines()[0] == f"iotsuite is ready: {gateway_url(suite.settings)}"
    assert f"http://127.0.0.1:{suite.settings.gateway_port}" in ready.text
    for name in SERVICES:
        assert suite.settings.address(name) in ready.text
    pids = suite.pids()
    assert sorted(pids) == sorted([*SERVICES, GATEWAY])
    for pid in pids.values():
        # Each child leads its own process group, so a terminal's Ctrl-C
        # reaches only the launcher, which stops children in order.
        assert os.getpgid(pid) == pid
        assert os.getpgid(pid) != os.getpgid(0)

    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 30) == 0
    assert_all_gone(pids)


async def test_cancelling_stops_every_child(suite: Suite) -> None:
    ready = Ready()
    task = await suite.run(on_ready=ready)
    await ready.wait(task)
    pids = suite.pids()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    assert_all_gone(pids)


async def test_stop_event_ends_the_run_with_status_zero(suite: Suite) -> None:
    ready = Ready()
    stop = asyncio.Event()
    task = await suite.run(on_ready=ready, stop=stop)
    await ready.wait(task)
    pids = suite.pids()

    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    assert_all_gone(pids)


async def test_child_crashing_at_start_fails_the_run_naming_it(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    crash = [PYTHON, "-c", "import sys; sys.exit(3)"]
    task = await suite.run(fake_commands(devices=crash))

    assert await asyncio.wait_for(task, 30) == 1
    err = capsys.readouterr().err
    assert "devices exited during start-up (exit code 3)" in err
    pids = suite.pids()
    assert GATEWAY not in pids, "the gateway must not start before the services are ready"
    assert_all_gone(pids)


async def new_pid(suite: Suite, name: str, old: int, timeout: float = 20.0) -> int:
    """The pid of ``name``'s next incarnation, once it has written it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (pid := suite.pids()[name]) == old:
        assert asyncio.get_running_loop().time() < deadline, f"{name} was not restarted"
        await asyncio.sleep(0.05)
    return pid


async def serving(address: str, timeout: float = 20.0) -> bool:
    """True once the gRPC health service at ``address`` says SERVING."""
    async with aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout, wait_for_ready=True
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_child_dying_later_is_restarted_and_the_others_keep_running(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = Ready()
    dying = [PYTHON, str(FAKES / "health_server.py"), "telemetry", "--exit-after", "2"]
    stop = asyncio.Event()
    task = await suite.run(fake_commands(telemetry=dying), on_ready=ready, stop=stop)
    await ready.wait(task)
    before = suite.pids()

    after = await new_pid(suite, "telemetry", before["telemetry"])

    assert "telemetry exited unexpectedly (exit code 7); restarting it in 0.5s" in (
        capsys.readouterr().err
    )
    assert not task.done()
    assert not alive(before["telemetry"])
    for name, pid in before.items():
        if name != "telemetry":
            assert alive(pid) and suite.pids()[name] == pid, name
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    assert_all_gone({**before, "restarted": after, **suite.pids()})


async def test_child_killed_after_ready_is_restarted_and_ctrl_c_stops_everything(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = Ready()
    task = await suite.run(on_ready=ready, handle_signals=True)
    await ready.wait(task)
    before = suite.pids()

    os.kill(before["chat"], signal.SIGKILL)
    after = await new_pid(suite, "chat", before["chat"])

    assert await serving(suite.settings.address("chat"))
    assert not task.done()
    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(task, 30) == 0
    err = capsys.readouterr().err
    assert "chat exited unexpectedly (killed by SIGKILL); restarting it in 0.5s" in err
    # Stopping is not dying: nothing stopped by Ctrl-C is restarted.
    assert err.count("restarting it") == 1
    assert suite.pids()["chat"] == after
    assert_all_gone({**before, **suite.pids()})


async def test_stop_during_the_pause_before_a_restart_restarts_nothing(
    suite: Suite, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "RESTART_FIRST", 30.0)
    ready = Ready()
    stop = asyncio.Event()
    task = await suite.run(on_ready=ready, stop=stop)
    await ready.wait(task)
    before = suite.pids()

    os.kill(before["devices"], signal.SIGKILL)
    for _ in range(200):
        if "restarting it in 30s" in capsys.readouterr().err:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("no restart was announced")
    stop.set()

    assert await asyncio.wait_for(task, 10) == 0
    assert suite.pids() == before, "a child was started after the stop"
    assert_all_gone(before)


def test_restart_pauses_double_up_to_the_cap_and_reset_after_a_long_run() -> None:
    backoff = launcher._Backoff()
    pauses = [backoff.after(1.0) for _ in range(9)]
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.after(59.0) == 30.0
    assert backoff.after(60.0) == 0.5
    assert backoff.after(1.0) == 1.0


async def test_taken_port_is_reported_and_nothing_starts(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = split_address(suite.settings.address("analytics"))
    with closing(socket.socket()) as squatter:
        squatter.bind((host, port))
        squatter.listen()
        task = await suite.run()
        assert await asyncio.wait_for(task, 30) == 1
    err = capsys.readouterr().err
    assert f"cannot start analytics on {host}:{port}: address already in use" in err
    assert suite.pids() == {}


async def test_taken_metrics_port_is_reported_and_nothing_starts(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env = {**suite.env, "IOT_TELEMETRY_METRICS_ADDR": f"127.0.0.1:{port}"}
    with closing(socket.socket()) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        task = await Suite(load_settings(env), env, suite.pid_dir).run()
        assert await asyncio.wait_for(task, 30) == 1
    err = capsys.readouterr().err
    assert f"cannot start telemetry metrics on 127.0.0.1:{port}: address already in use" in err
    assert suite.pids() == {}


async def test_the_banner_says_where_metrics_are_served(suite: Suite) -> None:
    port = free_port()
    env = {**suite.env, "IOT_DEVICES_METRICS_ADDR": f"0.0.0.0:{port}"}
    ready = Ready()
    stop = asyncio.Event()
    task = await Suite(load_settings(env), env, suite.pid_dir).run(on_ready=ready, stop=stop)
    await ready.wait(task)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    (line,) = [line for line in ready.text.splitlines() if "metrics" in line]
    assert line.split() == ["devices", "metrics", f"http://127.0.0.1:{port}/metrics"]


def test_iot_up_serves_metrics_at_default_ports_unless_set() -> None:
    env = launcher.with_metrics_defaults(
        {"IOT_TELEMETRY_METRICS_ADDR": "0.0.0.0:9999", "IOT_CHAT_METRICS_ADDR": ""}
    )
    settings = load_settings(env)
    assert settings.metrics_address("auth") == "127.0.0.1:9461"
    assert settings.metrics_address("gateway") == "127.0.0.1:9460"
    assert settings.metrics_address("telemetry") == "0.0.0.0:9999"
    assert settings.metrics_address("chat") is None  # set empty: off


async def test_child_ignoring_sigterm_is_killed(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = Ready()
    stubborn = [PYTHON, str(FAKES / "health_server.py"), "chat", "--ignore-term"]
    stop = asyncio.Event()
    task = await suite.run(fake_commands(chat=stubborn), on_ready=ready, stop=stop, kill_after=1.0)
    await ready.wait(task)
    pids = suite.pids()

    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    assert "chat did not stop within 1s; killing it" in capsys.readouterr().err
    assert_all_gone(pids)


async def test_not_ready_in_time_names_the_laggard(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    lazy = [PYTHON, str(FAKES / "health_server.py"), "auth", "--not-serving"]
    task = await suite.run(fake_commands(auth=lazy), ready_timeout=3.0)

    assert await asyncio.wait_for(task, 30) == 1
    err = capsys.readouterr().err
    assert "not ready in time: auth at" in err
    assert "NOT_SERVING" in err
    assert_all_gone(suite.pids())


async def test_slow_service_is_waited_for(suite: Suite) -> None:
    ready = Ready()
    slow = [PYTHON, str(FAKES / "health_server.py"), "auth", "--delay", "2"]
    stop = asyncio.Event()
    task = await suite.run(fake_commands(auth=slow), on_ready=ready, stop=stop)
    await ready.wait(task)
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0


async def test_unknown_child_name_is_refused(suite: Suite) -> None:
    with pytest.raises(ValueError, match="unknown children"):
        await run_suite(suite.settings, commands={"billing": [PYTHON, "-c", "pass"]})


def test_default_commands_run_each_service_module_and_the_gateway() -> None:
    commands = default_commands("/usr/bin/python3")
    assert list(commands) == [*SERVICES, GATEWAY]
    assert commands["auth"] == ["/usr/bin/python3", "-m", "services.auth"]
    assert commands[GATEWAY] == ["/usr/bin/python3", "-m", "gateway"]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("auth:50051", ("auth", 50051)),
        ("[::]:50051", ("::", 50051)),
        ("[::1]:8080", ("::1", 8080)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


def test_wildcard_hosts_are_probed_on_loopback() -> None:
    assert dial_host("0.0.0.0") == "127.0.0.1"
    assert dial_host("::") == "localhost"
    assert dial_host("::1") == "[::1]"
    assert dial_host("example") == "example"
    assert gateway_url(Settings(gateway_host="0.0.0.0", gateway_port=9000)) == (
        "http://127.0.0.1:9000"
    )


def test_port_problem_sees_a_listener_but_not_a_free_port() -> None:
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_problem("127.0.0.1", port) is not None
    assert port_problem("127.0.0.1", free_port()) is None
    assert "cannot resolve" in (port_problem("no-such-host.invalid", 1) or "")


def test_cli_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "up" in out
    assert "gen" in out


def test_cli_up_with_bad_config_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_ENV", "production")
    monkeypatch.delenv("IOT_SECRET_KEY", raising=False)
    assert cli.main(["up"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iot: configuration error: IOT_SECRET_KEY")
    assert err.count("\n") == 1


# A database the fakes never open: replicas are refused without PostgreSQL.
POSTGRES = "postgresql://nobody@127.0.0.1:1/none"


async def test_replicas_listen_on_ports_ten_apart_and_each_is_kept_running(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    suite.settings = suite.settings.model_copy(update={"database_url": POSTGRES})
    ready = Ready()
    task = await suite.run(
        on_ready=ready, handle_signals=True, replicas={"telemetry": 2, "analytics": 3}
    )
    await ready.wait(task)
    expected = {}
    for service, count in (("telemetry", 2), ("analytics", 3)):
        host, port = split_address(suite.settings.address(service))
        for n in range(count):
            expected[replicas.child_name(service, n + 1)] = f"{host}:{port + 10 * n}"
    lines = ready.text.splitlines()
    banner = dict(line.split() for line in lines[1:] if len(line.split()) == 2)
    analytics = ",".join(expected[replicas.child_name("analytics", n)] for n in (1, 2, 3))
    assert f"  export IOT_ANALYTICS_ADDR={analytics}" in lines
    for name, address in expected.items():
        assert banner[name] == address
        assert await serving(address)
    before = suite.pids()
    assert sorted(before) == sorted(
        [*SERVICES, GATEWAY, "telemetry-2", "analytics-2", "analytics-3"]
    )

    os.kill(before["analytics-2"], signal.SIGKILL)
    await new_pid(suite, "analytics-2", before["analytics-2"])
    assert await serving(expected["analytics-2"])
    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(task, 30) == 0
    err = capsys.readouterr().err
    assert "analytics-2 exited unexpectedly (killed by SIGKILL)" in err
    assert err.count("restarting it") == 1
    assert_all_gone({**before, **suite.pids()})


def test_every_child_is_told_every_replica_and_each_replica_where_it_listens() -> None:
    settings = Settings(addresses={"analytics": "127.0.0.1:7004"}, database_url=POSTGRES)
    layout = replicas.plan(settings, {"analytics": 2, "telemetry": 1})
    assert layout.variables()["IOT_ANALYTICS_ADDR"] == "127.0.0.1:7004,127.0.0.1:7014"
    assert layout.variables()["IOT_TELEMETRY_ADDR"] == "127.0.0.1:50053"
    assert layout.children("analytics") == ["analytics", "analytics-2"]
    assert layout.address_of("analytics-2") == "127.0.0.1:7014"
    # A list configured already starts a replica per address.
    listed = Settings(addresses={"devices": "127.0.0.1:7002,127.0.0.1:7102"}, database_url=POSTGRES)
    assert replicas.plan(listed, {}).children("devices") == ["devices", "devices-2"]


def test_each_replica_serves_its_metrics_on_its_own_port() -> None:
    settings = Settings(
        database_url=POSTGRES,
        metrics_addresses={"analytics": "127.0.0.1:9464", "gateway": "127.0.0.1:9460"},
    )
    layout = replicas.plan(settings, {"analytics": 3})
    assert [layout.metrics_address(settings, c) for c in layout.children("analytics")] == [
        "127.0.0.1:9464",
        "127.0.0.1:9474",
        "127.0.0.1:9484",
    ]
    assert layout.metrics_address(settings, GATEWAY) == "127.0.0.1:9460"
    assert layout.metrics_address(settings, "devices") is None  # off for devices
    assert layout.own_variables(settings, "analytics-2") == {
        "IOT_LISTEN_ADDR": "127.0.0.1:50064",
        "IOT_ANALYTICS_METRICS_ADDR": "127.0.0.1:9474",
    }
    assert layout.own_variables(settings, "devices") == {"IOT_LISTEN_ADDR": "127.0.0.1:50052"}


@pytest.mark.parametrize(
    ("settings", "asked", "reason"),
    [
        (Settings(), {"telemetry": 2}, "replicas of telemetry need PostgreSQL"),
        (Settings(database_url=POSTGRES), {"chat": 2}, "chat runs as one process"),
        (Settings(database_url=POSTGRES), {"auth": 2}, "replicas of auth need Redis"),
        (
            Settings(addresses={"telemetry": "127.0.0.1:1,127.0.0.1:2"}, database_url=POSTGRES),
            {"telemetry": 2},
            "give either that list or --replicas telemetry=N",
        ),
    ],
)
def test_replicas_that_cannot_run_are_refused_saying_why(
    settings: Settings, asked: dict[str, int], reason: str
) -> None:
    with pytest.raises(replicas.ReplicaError, match=reason):
        replicas.plan(settings, asked)


async def test_replicas_on_sqlite_start_nothing(
    suite: Suite, capsys: pytest.CaptureFixture[str]
) -> None:
    task = await suite.run(replicas={"analytics": 2})
    assert await asyncio.wait_for(task, 30) == 1
    assert "SQLite has one writer per file" in capsys.readouterr().err
    assert suite.pids() == {}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("telemetry", "is not SERVICE=COUNT"),
        ("telemetry=two", "is not SERVICE=COUNT"),
        ("billing=2", "unknown service"),
        ("analytics=0", "between 1 and 10"),
        ("analytics=11", "between 1 and 10"),
    ],
)
def test_bad_replica_counts_are_refused(text: str, error: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=error):
        replicas.parse_replicas(text)
    assert replicas.parse_replicas("telemetry=2, analytics=3") == {"telemetry": 2, "analytics": 3}


def test_cli_up_with_replicas_on_sqlite_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IOT_DATABASE_URL", raising=False)
    assert cli.main(["up", "--replicas", "telemetry=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iot: configuration error: replicas of telemetry need PostgreSQL")
    assert err.count("\n") == 1
