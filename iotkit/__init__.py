"""The service kit: what every iotsuite process shares.

Configuration, database engines, the gRPC server builder, interceptors,
errors, token verification, health and diagnostics, logging and test helpers.
"""

__version__ = "0.1.0"
