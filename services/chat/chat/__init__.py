"""The chat API (``iot.chat.v1``): sessions, messages, understanding, help and escalation."""
