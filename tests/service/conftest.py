"""Fixtures of the service tests beyond the suite-wide ones: the test SMTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.auth_support import Mailbox, smtp_server


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server for one test, collecting what auth sends."""
    with smtp_server() as box:
        yield box
