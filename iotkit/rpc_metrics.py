"""The per-RPC series every service exports: calls by code, server faults, durations.

The service interceptor records each answered call once, with its final
status code; the series live in the process's own registry (see
:mod:`iotkit.metrics`). Methods are the full gRPC names: a bounded set that
the server itself defines, never anything a caller chooses.
"""

from __future__ import annotations

from typing import Any

import grpc

from iotkit.metrics import ProcessMetrics

SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""Codes that say the server, or what it depends on, failed (not the caller's request)."""


class RpcMetrics:
    """``iot_rpc_requests_total``, ``iot_rpc_server_errors_total`` and
    ``iot_rpc_duration_seconds`` of one server."""

    def __init__(self, metrics: ProcessMetrics) -> None:
        self._requests = metrics.counter(
            "iot_rpc_requests_total",
            "RPCs answered, by method and gRPC status code.",
            ("method", "code"),
        )
        self._faults = metrics.counter(
            "iot_rpc_server_errors_total",
            "RPCs that failed on the server side (INTERNAL, UNKNOWN, UNAVAILABLE, DATA_LOSS, "
            "DEADLINE_EXCEEDED), by method and code.",
            ("method", "code"),
        )
        self._duration = metrics.histogram(
            "iot_rpc_duration_seconds",
            "Time from a call's arrival to its answer, by method.",
            ("method",),
        )
        # The labelled children of each (method, code): looking one up checks the labels and
        # takes a lock, on every call otherwise; methods and codes are few.
        self._children: dict[tuple[str, grpc.StatusCode], tuple[Any, Any, Any]] = {}

    def record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Count one answered call of ``method`` that ended with ``code`` after ``seconds``."""
        children = self._children.get((method, code))
        if children is None:
            children = (
                self._requests.labels(method, code.name),
                self._faults.labels(method, code.name) if code in SERVER_FAULTS else None,
                self._duration.labels(method),
            )
            self._children[(method, code)] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        children[2].observe(seconds)
