"""The Prometheus scrape configurations and the Grafana dashboard in ``deploy/``.

Both parse; every configuration scrapes every process at the port it serves
``/metrics`` on; every dashboard query names only series the code defines
(the service test ``tests/service/test_metrics.py`` checks them against real
scrapes too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from iotkit.config import DEFAULT_METRICS_PORTS, PROCESSES

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "iotsuite-dashboard.json"
SOURCES = ("iotkit", "services", "gateway")
_SERIES = re.compile(r"\biot_[a-z_]+")
_HISTOGRAM_PARTS = re.compile(r"_(bucket|count|sum)$")


def dashboard_series() -> set[str]:
    """The metric names the dashboard's queries use, histogram parts folded into their
    histogram."""
    return {
        _HISTOGRAM_PARTS.sub("", name)
        for expr in dashboard_queries()
        for name in _SERIES.findall(expr)
    }


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def defined_series() -> set[str]:
    """The metric names registered in the code (string literals that start ``iot_``)."""
    names: set[str] = set()
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            names |= set(re.findall(r'"(iot_[a-z_]+)"', path.read_text()))
    return names


def scrape_config(name: str) -> dict[str, Any]:
    """``deploy/<name>`` parsed."""
    document: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())
    return document


def test_compose_configuration_scrapes_every_replica_of_every_process() -> None:
    jobs = {job["job_name"]: job for job in scrape_config("prometheus.yml")["scrape_configs"]}
    assert set(jobs) == set(PROCESSES)
    for name, job in jobs.items():
        (discovery,) = job["dns_sd_configs"]
        assert discovery == {"names": [name], "type": "A", "port": DEFAULT_METRICS_PORTS[name]}


def test_local_configuration_scrapes_iot_up_defaults() -> None:
    jobs = {job["job_name"]: job for job in scrape_config("prometheus-local.yml")["scrape_configs"]}
    assert {name: job["static_configs"][0]["targets"] for name, job in jobs.items()} == {
        name: [f"127.0.0.1:{port}"] for name, port in DEFAULT_METRICS_PORTS.items()
    }


def test_kubernetes_configuration_names_jobs_by_component() -> None:
    (job,) = scrape_config("prometheus-kubernetes.yml")["scrape_configs"]
    targets = {rule.get("target_label") for rule in job["relabel_configs"]}
    assert {"job", "instance", "__address__", "__metrics_path__"} <= targets


def test_every_dashboard_panel_queries_series_the_code_defines() -> None:
    queries = dashboard_queries()
    assert queries and all(query.strip() for query in queries)
    used = dashboard_series()
    assert "iot_rpc_requests_total" in used and "iot_http_request_duration_seconds" in used
    assert used - defined_series() == set()


def test_the_series_check_can_fail() -> None:
    assert {"iot_rpc_requests_total", "iot_no_such_series_total"} - defined_series() == {
        "iot_no_such_series_total"
    }
