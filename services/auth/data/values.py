"""A prepared export as the logic sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One prepared file of a user's data, kept until its link expires."""

    id: str
    user_id: str
    file_name: str
    content_type: str
    created_at: datetime
    expires_at: datetime
    content: bytes = field(repr=False)
