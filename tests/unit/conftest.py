"""Fixtures the unit tests share: the chat's trained understander and its help library,
each built once per test process (training takes most of a second)."""

from __future__ import annotations

import pytest

from services.chat.chat.help.library import HelpLibrary
from services.chat.chat.nlu.understanding import Understander


@pytest.fixture(scope="session")
def understander() -> Understander:
    """The understander trained on the chat's own training data."""
    return Understander.trained()


@pytest.fixture(scope="session")
def library() -> HelpLibrary:
    """The help articles shipped with the chat."""
    return HelpLibrary.load()
