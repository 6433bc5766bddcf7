"""Fixtures for gateway tests: real gRPC servers with fake servicers, a real uvicorn.

Helpers and the fake servicers live in ``gw_support``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path

import google.api
import grpc
import httpx
import pytest
from grpc_tools import protoc
from gw_support import (
    PROTO_DIR,
    REPO_PROTOS,
    FakeAuth,
    Fakes,
    FakeSystem,
    Probe,
    Recorder,
    gateway_methods,
    make_probe_servicer,
    running_gateway,
)

from iot.auth.v1 import auth_pb2_grpc
from iot.system.v1 import system_pb2_grpc
from iotkit.config import Settings
from tests import leak_scan


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    """Compile tests/gateway/protos into a temporary package and import it."""
    out = tmp_path_factory.mktemp("gwprobe")
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    googleapis = Path(google.api.__path__[0]).parent.parent
    sources = ["gwprobe/v1/probe.proto", "gwprobe/v1/bad.proto"]
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{REPO_PROTOS}", f"-I{well_known}", f"-I{googleapis}"]
    args += [f"--python_out={out}", f"--grpc_python_out={out}", *sources]
    assert protoc.main(args) == 0, "the probe proto must compile"
    for directory in (out / "gwprobe", out / "gwprobe" / "v1"):
        (directory / "__init__.py").touch()
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("gwprobe.v1.probe_pb2")
        pb2_grpc = importlib.import_module("gwprobe.v1.probe_pb2_grpc")
        bad = importlib.import_module("gwprobe.v1.bad_pb2")
        yield Probe(pb2=pb2, grpc=pb2_grpc, bad_file=bad.DESCRIPTOR)
    finally:
        sys.path.remove(str(out))


@pytest.fixture
async def fakes(probe: Probe) -> AsyncIterator[Fakes]:
    """Auth, system and probe servicers on one server at 127.0.0.1:<free port>."""
    recorder = Recorder()
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(recorder), server)
    system_pb2_grpc.add_SystemServiceServicer_to_server(FakeSystem(recorder), server)
    probe.grpc.add_ProbeServiceServicer_to_server(make_probe_servicer(probe, recorder), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield Fakes(address=f"127.0.0.1:{port}", recorder=recorder)
    finally:
        await server.stop(grace=None)


@pytest.fixture
async def client(fakes: Fakes, probe: Probe) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a gateway whose auth and devices addresses are the fake fakes."""
    settings = Settings(addresses={"auth": fakes.address, "devices": fakes.address})
    async with (
        running_gateway(settings, gateway_methods(probe)) as base_url,
        httpx.AsyncClient(
            base_url=base_url, timeout=10, event_hooks=leak_scan.response_hooks()
        ) as http,
    ):
        yield http
