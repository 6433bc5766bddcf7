"""Chat's settings: the shared ones plus the optional language model (``IOT_*`` variables)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from iotkit.config import EmptyIsUnset, Settings


class ChatSettings(Settings):
    """The chat process's settings; see the configuration table in the README."""

    # An OpenAI-compatible chat-completions server that phrases the replies;
    # the built-in engine answers alone when unset.
    chat_llm_url: Annotated[str | None, EmptyIsUnset] = None
    chat_llm_model: Annotated[str, EmptyIsUnset] = "llama3.2"
    chat_llm_api_key: Annotated[str | None, EmptyIsUnset] = Field(default=None, repr=False)
