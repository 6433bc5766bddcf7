"""JWK conversion and the remote key fetcher the services use.

Services other than auth fetch the public keys from auth's ``GetJwks`` RPC
(the same document the gateway publishes at ``/.well-known/jwks.json``).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from grpc import aio

from iot.auth.v1 import auth_pb2, auth_pb2_grpc
from iotkit.tokens import ALGORITHM, KeyFetcher, b64url, b64url_decode

FETCH_DEADLINE = 3.0


def to_jwk(kid: str, key: Ed25519PublicKey) -> auth_pb2.Jwk:
    """The JWK (RFC 8037) of an Ed25519 public key."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return auth_pb2.Jwk(kty="OKP", crv="Ed25519", x=b64url(raw), kid=kid, use="sig", alg=ALGORITHM)


def from_jwk(jwk: auth_pb2.Jwk) -> Ed25519PublicKey | None:
    """The public key of a JWK, or None for a key type the suite does not use."""
    if jwk.kty != "OKP" or jwk.crv != "Ed25519" or not jwk.kid:
        return None
    return Ed25519PublicKey.from_public_bytes(b64url_decode(jwk.x))


def remote_jwks(channel: aio.Channel) -> KeyFetcher:
    """A fetcher that asks the auth service on ``channel`` for its public keys."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    async def fetch() -> dict[str, Ed25519PublicKey]:
        answer = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=FETCH_DEADLINE)
        keys = {jwk.kid: from_jwk(jwk) for jwk in answer.keys}
        return {kid: key for kid, key in keys.items() if key is not None}

    return fetch
