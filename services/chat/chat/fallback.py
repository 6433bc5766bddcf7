"""The assistant of last resort: it offers a person (or hands over to one).

It answers whenever the real assistant fails (the service catches the
failure, logs it and asks this one), so a user always gets an answer and the
escalation rises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.chat.chat.values import Asker, Reply, Turn

OFFER = "I'm not able to help with that yet — would you like to talk to a person?"
HANDOVER = "Of course — I'm passing this conversation to a person, who will reply here."
# A request for a person: "talk to a human", "can I speak to an agent", "real person please".
_PERSON = re.compile(
    r"\b(person|people|human|agent|operator|someone|somebody|staff|support team|representative)\b",
    re.IGNORECASE,
)


class FallbackAssistant:
    """Answers every message by offering a person, or handing over when asked for one."""

    async def reply(self, *, text: str, asker: Asker, history: Sequence[Turn]) -> Reply:
        """The fallback reply to ``text``."""
        if _PERSON.search(text):
            return Reply(text=HANDOVER, intent="human", confidence=1.0, wants_person=True)
        return Reply(text=OFFER, intent="out_of_scope", confidence=0.0, unsure=True)
