# One image for every process of the suite. `docker run IMAGE` starts the
# whole suite in one container (`iot up`); docker-compose.yml runs each
# service and the gateway in its own containers from this same image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, read from pyproject.toml, so that a code change does
# not reinstall them (layer cache).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY protos ./protos
COPY tools ./tools
COPY iotkit ./iotkit
COPY iotsuite ./iotsuite
COPY services ./services
COPY gateway ./gateway

# Generated code is built into the image, never taken from the build context
# (.dockerignore leaves iot/ out). The compat editable install puts /app on
# sys.path and provides the `iot` command, and keeps non-Python files (the
# gateway's web console, for instance) where the code expects them.
# grpcio-tools generates the code and leaves again: serving never compiles protos.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['codegen'])" > /tmp/codegen.txt \
    && pip install -r /tmp/codegen.txt \
    && python -m tools.gen_protos \
    && pip uninstall -y grpcio-tools \
    && rm /tmp/codegen.txt \
    && pip install --no-deps -e . --config-settings editable_mode=compat \
    && python -c "import iotsuite.cli, iot, gateway.comments as c; assert c.load_comments()"

# The code stays root-owned and read-only to the process; only the data
# directory is writable.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin iot \
    && mkdir -p /data \
    && chown iot:iot /data
USER iot

# Inside a container the gateway must listen on every interface to be
# reachable; the services keep their loopback defaults for `iot up`.
# The detector's compiled loops (numba) cache their machine code; the image's
# files are read-only to the iot user (and the root file system is in
# Kubernetes), so the cache lives under /tmp, an emptyDir there.
ENV IOT_DATA_DIR=/data \
    IOT_GATEWAY_HOST=0.0.0.0 \
    IOT_GATEWAY_PORT=8080 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('IOT_GATEWAY_PORT', '8080')}/healthz\", timeout=3)"]

# Services stop on SIGTERM after draining; `iot up` forwards it to them.
STOPSIGNAL SIGTERM
CMD ["iot", "up"]
