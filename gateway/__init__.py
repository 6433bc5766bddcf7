"""The REST gateway: generic HTTP/JSON <-> gRPC translation, and the web console.

Routes come from the ``google.api.http`` annotations of the protos; see
:func:`gateway.app.build_app` and :func:`gateway.serve.start_gateway`.
"""
