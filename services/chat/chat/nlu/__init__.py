"""Natural-language understanding for the chat assistant: intents and slots.

:class:`~services.chat.chat.nlu.understanding.Understander` is the entry point.
"""

from services.chat.chat.nlu.understanding import (
    INTENTS,
    DeviceRef,
    Period,
    Slots,
    Understander,
    Understanding,
)

__all__ = ["INTENTS", "DeviceRef", "Period", "Slots", "Understander", "Understanding"]
