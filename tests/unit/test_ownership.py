"""``owned``: the caller's row, or NOT_FOUND exactly as for a missing one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from iotkit import reasons
from iotkit.context import Caller
from iotkit.errors import NotFound
from iotkit.ownership import owned


@dataclass
class Row:
    owner_id: str


ANN = Caller(subject="ann", role="user", scopes=frozenset(), token_type="access")
ADMIN = Caller(subject="root", role="admin", scopes=frozenset(), token_type="access")


def test_the_owner_gets_the_row() -> None:
    row = Row("ann")
    assert owned(row, ANN, message="Thing not found", reason=reasons.NOT_FOUND) is row


@pytest.mark.parametrize("row", [None, Row("bob")], ids=["missing", "another user's"])
def test_missing_and_foreign_rows_answer_the_same(row: Row | None) -> None:
    with pytest.raises(NotFound) as caught:
        owned(row, ANN, message="Device not found", reason=reasons.DEVICE_NOT_FOUND)
    assert (caught.value.message, caught.value.reason) == ("Device not found", "DEVICE_NOT_FOUND")


def test_an_admin_sees_every_row_unless_told_otherwise() -> None:
    row = Row("bob")
    assert owned(row, ADMIN, message="x", reason=reasons.NOT_FOUND) is row
    with pytest.raises(NotFound):
        owned(row, ADMIN, message="x", reason=reasons.NOT_FOUND, admin_sees_all=False)
    with pytest.raises(NotFound):
        owned(None, ADMIN, message="x", reason=reasons.NOT_FOUND)
