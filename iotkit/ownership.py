"""Owned by the caller, or NOT_FOUND.

Another user's resource answers exactly as a missing one (NOT_FOUND, not
PERMISSION_DENIED), so that no caller learns what exists; services look a
row up and pass it through :func:`owned` rather than writing that test again.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from iotkit.context import Caller
from iotkit.errors import NotFound


class Owned(Protocol):
    """A row that belongs to one user."""

    @property
    def owner_id(self) -> str:
        """The id (token subject) of the user the row belongs to."""
        ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def owned(
    row: OwnedT | None,
    caller: Caller,
    *,
    message: str,
    reason: str,
    admin_sees_all: bool = True,
) -> OwnedT:
    """``row`` when it exists and belongs to ``caller``; else NOT_FOUND with ``message``/``reason``.

    Administrators see every row unless ``admin_sees_all`` is False.
    """
    if row is None or (row.owner_id != caller.subject and not (admin_sees_all and caller.is_admin)):
        raise NotFound(message, reason=reason)
    return row
