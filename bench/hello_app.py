"""A bare Starlette hello-world under uvicorn, the gateway's yardstick:
``python -m bench.hello_app PORT``.

Served with the gateway's own uvicorn options (:func:`gateway.serve.uvicorn_options`),
in one process, so that what separates the two is the gateway's work alone.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.serve import uvicorn_options


async def hello(request: Request) -> JSONResponse:
    """A small JSON answer, as the gateway's are."""
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/hello", hello)])

if __name__ == "__main__":
    uvicorn.Server(uvicorn.Config(app, **uvicorn_options("127.0.0.1", int(sys.argv[1])))).run()
