"""The InfluxDB bench job's pure helpers: line protocol, its queries and its config."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bench.influx_peer import chart_query, influx_config, line_protocol


def test_a_batch_is_one_line_a_reading_that_reads_back_exactly() -> None:
    stamps = np.array([1_700_000_000_000_000, 1_700_000_001_000_000], dtype=np.int64)
    values = np.array([0.1 + 0.2, -1e-07])
    body = line_protocol("readings", {"device": "sim-0001"}, stamps, values)
    lines = body.decode().splitlines()
    assert lines[0] == "readings,device=sim-0001 value=0.30000000000000004 1700000000000000"
    parsed = [line.rsplit(" ", 1) for line in lines]
    assert [float(head.split("value=")[1]) for head, _ in parsed] == values.tolist()
    assert [int(stamp) for _, stamp in parsed] == stamps.tolist()
    assert body.endswith(b"\n")


def test_tags_are_sorted_and_escaped() -> None:
    body = line_protocol(
        "my readings",
        {"site": "a=b", "device": "x, y"},
        np.array([1], dtype=np.int64),
        np.array([2.0]),
    )
    assert body == b"my\\ readings,device=x\\,\\ y,site=a\\=b value=2.0 1\n"


def test_values_line_protocol_cannot_carry_are_refused() -> None:
    with pytest.raises(ValueError, match="values"):
        line_protocol("r", {}, np.array([1, 2], dtype=np.int64), np.array([1.0, math.nan]))


def test_the_chart_query_has_its_buckets_aligned_on_the_start() -> None:
    start, end = 1_700_000_000_123_456, 1_700_000_000_123_456 + 1_000_000 * 1_000_000
    statement = chart_query("chart", start, end, 1_900)
    interval = math.ceil((end - start) / 1_900)
    assert f"GROUP BY time({interval}u, {start % interval}u)" in statement
    assert f"time >= {start}u AND time < {end}u" in statement
    assert "device = 'chart'" in statement
    assert math.ceil((end - start) / interval) == 1_900


def test_the_config_keeps_everything_in_its_root_and_the_engine_at_its_defaults(
    tmp_path: Path,
) -> None:
    config = tomllib.loads(
        influx_config(tmp_path, http_port=52201, rpc_port=52202, compact_now=False)
    )
    assert config["reporting-disabled"] is True
    assert config["bind-address"] == "127.0.0.1:52202"
    assert config["http"]["bind-address"] == "127.0.0.1:52201"
    assert config["meta"]["dir"] == str(tmp_path / "meta")
    assert config["data"] == {
        "dir": str(tmp_path / "data"),
        "wal-dir": str(tmp_path / "wal"),
        "query-log-enabled": False,
    }
    assert config["monitor"]["store-enabled"] is False
    compact = tomllib.loads(influx_config(tmp_path, http_port=1, rpc_port=2, compact_now=True))
    assert compact["data"]["compact-full-write-cold-duration"] == "1s"
    assert compact["data"]["cache-snapshot-write-cold-duration"] == "1s"
