"""What authentication costs a call.

Token verification alone against a bare pyjwt decode of the same token, and
an authenticated RPC (GetTokenInfo: signature, expiry, scopes, session
lookup) against an unauthenticated one (Health.Check) on the same server
with the same interceptor chain.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import grpc
import jwt
from argon2 import PasswordHasher
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.report import Figure
from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.tokens import KeySet, TokenVerifier, static_keys
from services.auth.settings import AuthSettings
from services.auth.wiring import build

PASSWORD = "Str0ng!pass"


async def _rate(call, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Calls per second of ``call`` run back to back for about ``seconds``."""
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            await call()
        done += 50
    return done / elapsed


async def measure(seconds: float = 3.0) -> list[Figure]:
    """Run the auth benchmarks; answers their figures."""
    with tempfile.TemporaryDirectory() as data:
        settings = AuthSettings(data_dir=Path(data))
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        process = await build(settings, address="127.0.0.1:0", hasher=hasher)
        await process.built.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
                auth = auth_pb2_grpc.AuthServiceStub(channel)
                health = health_pb2_grpc.HealthStub(channel)
                await auth.Register(
                    auth_pb2.RegisterRequest(email="b@example.com", password=PASSWORD)
                )
                login = await auth.Login(
                    auth_pb2.LoginRequest(email="b@example.com", password=PASSWORD)
                )
                token = login.access_token
                metadata = [("authorization", f"Bearer {token}")]
                jwks = await auth.GetJwks(auth_pb2.GetJwksRequest())
                from iotkit.jwks import from_jwk

                key = from_jwk(jwks.keys[0])
                assert key is not None
                verifier = TokenVerifier(KeySet(static_keys([(jwks.keys[0].kid, key)])))

                async def raw_decode() -> None:
                    jwt.decode(token, key, algorithms=["EdDSA"])

                async def verify() -> None:
                    await verifier.verify(token)

                async def check() -> None:
                    await health.Check(health_pb2.HealthCheckRequest())

                async def token_info() -> None:
                    await auth.GetTokenInfo(auth_pb2.GetTokenInfoRequest(), metadata=metadata)

                baseline_decode = await _rate(raw_decode, seconds)
                verified = await _rate(verify, seconds)
                baseline_rpc = await _rate(check, seconds)
                authed_rpc = await _rate(token_info, seconds)
        finally:
            await process.aclose()
    return [
        Figure(
            "TokenVerifier.verify",
            "tokens/s",
            verified,
            "pyjwt decode",
            baseline_decode,
            "claims, type and key lookup on top of the signature check",
        ),
        Figure(
            "GetTokenInfo over gRPC",
            "calls/s",
            authed_rpc,
            "Health.Check over gRPC",
            baseline_rpc,
            "one client, sequential; includes the session lookup in SQLite",
        ),
    ]
