"""Analytics' CSV exports without gRPC: a text cell that a spreadsheet would run as a formula
is written behind an apostrophe (as the personal data export does), numbers as they are, and
JSON keeps every value as stored."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime

from iotkit.context import Caller
from services.analytics.analytics.service import CorrelationService, csv_cell
from services.analytics.analytics.values import Correlation


class OneCorrelation:
    """A store that holds one correlation result (the export's paging asks it by offset)."""

    def __init__(self, row: Correlation) -> None:
        self.row = row

    async def correlations(
        self, *, owner_id: str | None, stream_id: str | None, offset: int, limit: int | None
    ) -> tuple[list[Correlation], int]:
        return ([self.row] if offset == 0 else []), 1


def test_text_that_a_spreadsheet_would_run_is_quoted_and_numbers_are_not() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "=cmd|' /C calc'!A0"):
        assert csv_cell(text) == "'" + text
    for kept in ("door opened", "", "1", "a=1", "spike", "2024-01-01T00:00:00Z"):
        assert csv_cell(kept) == kept
    for number in (-0.5, -3, 0.0, 21.5):
        assert csv_cell(number) == number


async def test_the_correlation_export_quotes_its_text_cells() -> None:
    owner = str(uuid.uuid4())
    # No request stores such text today (the algorithm is one of three): a row from an older
    # version or a future free-text column.
    found = Correlation(
        id=str(uuid.uuid4()),
        owner_id=owner,
        stream_a=str(uuid.uuid4()),
        stream_b=str(uuid.uuid4()),
        coefficient=-0.75,
        window_start=datetime(2024, 1, 1, tzinfo=UTC),
        window_end=datetime(2024, 1, 2, tzinfo=UTC),
        algorithm='=HYPERLINK("http://example.com")',
        sample_count=100,
        best_lag_seconds=-2.0,
        grid_seconds=1.0,
        created_at=datetime(2024, 1, 2, tzinfo=UTC),
        p_value=0.01,
        ci_low=-0.9,
        ci_high=-0.5,
        effective_sample_count=50.0,
        lags_tried=1,
    )
    service = CorrelationService(store=OneCorrelation(found), reader=None)  # type: ignore[arg-type]
    caller = Caller(subject=owner, role="user", scopes=frozenset(), token_type="access")

    async def export(fmt: str) -> str:
        parts = [part async for part in service.export(caller=caller, fmt=fmt, stream_id="")]
        return b"".join(parts).decode()

    [row] = list(csv.DictReader(io.StringIO(await export("csv"))))
    assert row["algorithm"] == "'" + found.algorithm
    assert (row["coefficient"], row["best_lag_seconds"], row["ci_low"]) == ("-0.75", "-2.0", "-0.9")
    assert row["correlation_id"] == found.id and row["window_start"] == "2024-01-01T00:00:00Z"
    [record] = json.loads(await export("json"))
    assert (record["algorithm"], record["coefficient"]) == (found.algorithm, -0.75)
