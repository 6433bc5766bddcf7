"""The Mosquitto ``iot up`` starts: when it starts one, where, and what the banner says."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from iotsuite import mosquitto
from iotsuite.launcher import port_problem
from tests.support import free_port


def test_an_external_broker_is_used_as_it_is(tmp_path: Path) -> None:
    broker, line = mosquitto.for_suite(
        mqtt_url="mqtt://admin:secret@broker.example:1884",
        data_dir=tmp_path,
        port=free_port(),
        port_problem=port_problem,
    )
    assert broker is None
    assert line == "MQTT ingest on: external broker mqtt://broker.example:1884"
    assert not (tmp_path / "mosquitto").exists()


def test_without_mosquitto_ingest_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mosquitto.shutil, "which", lambda name: None)
    broker, line = mosquitto.for_suite(
        mqtt_url=None, data_dir=tmp_path, port=free_port(), port_problem=port_problem
    )
    assert broker is None and line.startswith("MQTT ingest off")


def test_its_own_broker_starts_under_the_data_dir_and_keeps_its_password(
    mosquitto_template: Path, tmp_path: Path
) -> None:
    port = free_port()
    broker, line = mosquitto.for_suite(
        mqtt_url=None, data_dir=tmp_path, port=port, port_problem=port_problem
    )
    assert broker is not None
    try:
        assert line == f"MQTT ingest on: mqtt://127.0.0.1:{port} (mosquitto of its own)"
        assert (tmp_path / "mosquitto" / "mosquitto.conf").read_text().count(f"listener {port}")
        password = (tmp_path / "mosquitto" / "admin-password").read_text()
        assert password in broker.url
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        with pytest.raises(mosquitto.BrokerError, match=r"set IOT_MQTT_PORT"):
            mosquitto.for_suite(
                mqtt_url=None, data_dir=tmp_path, port=port, port_problem=port_problem
            )
    finally:
        mosquitto.stop(broker.process)
    again = mosquitto.prepare(tmp_path / "mosquitto", port=free_port())
    assert again.admin_password == password  # a restart keeps the provisioned broker


def test_a_default_port_taken_moves_to_the_next_free_one(
    mosquitto_template: Path, tmp_path: Path
) -> None:
    """A system Mosquitto often holds 1883: unless IOT_MQTT_PORT chose it, iot up takes the
    next free port and says so, rather than not starting at all."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker, line = mosquitto.for_suite(
            mqtt_url=None,
            data_dir=tmp_path,
            port=port,
            port_problem=port_problem,
            port_chosen=False,
        )
        assert broker is not None
        try:
            moved = int(broker.display.rsplit(":", 1)[1])
            assert port < moved <= port + mosquitto.FALLBACK_PORTS
            assert line.startswith(f"MQTT ingest on: mqtt://127.0.0.1:{moved} (")
            assert f"{port} is in use" in line and "IOT_MQTT_PORT" in line
            with socket.create_connection(("127.0.0.1", moved), timeout=2):
                pass
        finally:
            mosquitto.stop(broker.process)
