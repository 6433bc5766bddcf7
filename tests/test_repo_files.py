"""The files that tell people and machines how to run the suite stay truthful.

README.md must open with the two commands; docker-compose.yml must parse and
name every process of the suite; ``.ci/run`` must run ``make test`` and treat
pytest's "no tests collected" as a failure; the Makefile keeps its targets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from iotkit.config import DEFAULT_PORTS, SERVICES
from tests.shared import SHARED

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SPEC = SHARED / "specs" / "compose-spec.json"
"""The Compose Specification's schema, beside the checkout as CI lays it out."""


def compose_services() -> dict[str, Any]:
    """The ``services:`` of docker-compose.yml, parsed."""
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    services = document["services"]
    assert isinstance(services, dict)
    return services


def test_readme_opens_with_the_two_commands() -> None:
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing"
    head = "\n".join(readme.read_text().splitlines()[:40])
    assert "make run" in head
    assert "make test" in head


def test_compose_file_follows_the_compose_specification() -> None:
    assert COMPOSE_SPEC.is_file(), f"{COMPOSE_SPEC} is missing: the schema CI validates against"
    schema = json.loads(COMPOSE_SPEC.read_text())
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(yaml.safe_load(COMPOSE.read_text()))
    ]
    assert problems == []


def test_compose_names_every_process_and_store() -> None:
    services = compose_services()
    assert set(services) >= {*SERVICES, "gateway", "postgres", "redis"}


def test_compose_wires_services_by_name_in_production() -> None:
    services = compose_services()
    for name in (*SERVICES, "gateway"):
        env = services[name]["environment"]
        assert env["IOT_ENV"] == "production"
        assert env["IOT_SECRET_KEY"].startswith("${IOT_SECRET_KEY:?")
        assert env["IOT_DATABASE_URL"].startswith("postgresql://")
        assert env["IOT_REDIS_URL"].startswith("redis://")
        for other in SERVICES:
            assert env[f"IOT_{other.upper()}_ADDR"] == f"{other}:{DEFAULT_PORTS[other]}"
        assert "healthcheck" in services[name]
    for name in SERVICES:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert str(DEFAULT_PORTS[name]) in services[name]["healthcheck"]["test"]
    assert services["gateway"]["command"] == ["python", "-m", "gateway"]
    for name in ("telemetry", "analytics"):
        assert services[name]["deploy"]["replicas"] >= 2


def test_ci_runs_make_test_and_fails_when_no_test_ran() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in script
    assert re.search(r"^make test\b", script, re.MULTILINE)
    assert re.search(r'"\$pytest_status" = "5"', script), "pytest's exit 5 must fail CI"
    assert "IOT_TEST_REQUIRE_SERVICES=1" in script


def test_makefile_has_the_documented_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "gen", "lint", "bench", "clean"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert re.search(r"^PYTHON \?= python3$", makefile, re.MULTILINE)
    assert "editable_mode=compat" in makefile


def test_dockerfile_runs_as_non_root_and_generates_code() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "python -m tools.gen_protos" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert 'CMD ["iot", "up"]' in dockerfile
    assert "iot" in (ROOT / ".dockerignore").read_text().split()


def test_readme_scale_out_sets_every_variable_compose_requires() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert required, "docker-compose.yml requires no variable"
    readme = (ROOT / "README.md").read_text()
    scale_out = readme[readme.index("## Scale-out") :]
    scale_out = scale_out[: scale_out.index("\n## ", 1)]
    assert {name for name in required if f"export {name}=" not in scale_out} == set()
