"""Per-method rules read from the ``(iot.common.v1.rules)`` proto option.

An RPC declares in its proto whether it is public, which scopes and token
types it needs; the interceptor and the gateway both read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from google.protobuf import descriptor_pool

from iot.common.v1 import options_pb2

_INFRASTRUCTURE = ("/grpc.health.", "/grpc.reflection.")


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Who may call one RPC."""

    public: bool
    scopes: frozenset[str]
    token_types: frozenset[str]
    # Public, yet a token that is sent is verified and names the caller.
    token_optional: bool = False


PUBLIC = AccessRule(public=True, scopes=frozenset(), token_types=frozenset())
DEFAULT = AccessRule(public=False, scopes=frozenset(), token_types=frozenset({"access"}))


@lru_cache(maxsize=1024)
def access_rule(method: str) -> AccessRule:
    """The rule of ``method`` given as ``/package.Service/Method``.

    Health and reflection are public so that probes and ``grpcurl list`` work;
    any other RPC without rules needs an access token.
    """
    if method.startswith(_INFRASTRUCTURE):
        return PUBLIC
    service, _, name = method.lstrip("/").partition("/")
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return DEFAULT
    options = descriptor.GetOptions()
    if not options.HasExtension(options_pb2.rules):
        return DEFAULT
    rules = options.Extensions[options_pb2.rules]
    return AccessRule(
        public=rules.public,
        scopes=frozenset(rules.scopes),
        token_types=frozenset(rules.token_types) or frozenset({"access"}),
        token_optional=rules.public and rules.token_optional,
    )
