"""The chat's language-model phraser against a real chat-completions server.

The server is a Starlette app served by uvicorn on a free port of this
machine, speaking the OpenAI chat-completions protocol the way Ollama, vLLM
and llama.cpp's server do; what it answers is set per test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.chat.chat.llm import SYSTEM_PROMPT, Phraser, completions_url, figures

QUESTION = "what does the greenhouse read now"
FACTS = (
    "device Greenhouse (temperature), stream temperature: latest 21.5 °C "
    "at 2026-03-14T14:05:00Z; mean over the past hour 20.9 °C"
)
DRAFT = "Greenhouse reads 21.5 °C (at 14:05 UTC); its mean over the past hour was 20.9 °C."
PHRASED = "Your greenhouse sensor reads 21.5 °C as of 14:05 UTC, against an hourly mean of 20.9 °C."


@dataclass
class FakeModel:
    """What the fake server answers next, and what it was sent."""

    mode: str = "ok"
    content: str = PHRASED
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


def _app(model: FakeModel) -> Starlette:
    async def completions(request: Request) -> Response:
        model.paths.append(request.url.path)
        model.headers.append(dict(request.headers))
        model.requests.append(json.loads(await request.body()))
        if model.mode == "error":
            return JSONResponse({"error": {"message": "model not loaded"}}, status_code=500)
        if model.mode == "slow":
            await asyncio.sleep(5)
        if model.mode == "malformed":
            return PlainTextResponse('{"choices": [{"message": ', media_type="application/json")
        if model.mode == "no-choices":
            return JSONResponse({"object": "chat.completion", "choices": []})
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": model.requests[-1].get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": model.content},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@dataclass
class Served:
    model: FakeModel
    base_url: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    model = FakeModel()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(model), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Served(model=model, base_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def phraser(served: Served) -> AsyncIterator[Phraser]:
    client = Phraser(url=served.base_url, model="llama3.2:1b", timeout=2.0)
    yield client
    await client.aclose()


async def test_the_phrased_answer_is_returned(phraser: Phraser, served: Served) -> None:
    assert await phraser.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) == PHRASED
    assert served.model.paths == ["/v1/chat/completions"]


async def test_the_request_carries_model_messages_facts_and_temperature(
    phraser: Phraser, served: Served
) -> None:
    await phraser.phrase(question=QUESTION, facts=FACTS, draft=DRAFT)
    (sent,) = served.model.requests
    assert sent["model"] == "llama3.2:1b"
    assert sent["temperature"] == 0.2
    system, user = sent["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert "only from the facts" in system["content"]
    assert "Never invent data" in system["content"]
    assert "one short paragraph" in system["content"]
    assert user["role"] == "user"
    for part in (QUESTION, FACTS, DRAFT):
        assert part in user["content"]
    assert "authorization" not in served.model.headers[0]


async def test_an_api_key_is_sent_as_a_bearer_token(served: Served) -> None:
    client = Phraser(url=served.base_url, model="m", api_key="sk-test-123")
    try:
        assert await client.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) == PHRASED
    finally:
        await client.aclose()
    assert served.model.headers[0]["authorization"] == "Bearer sk-test-123"


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
async def test_any_form_of_the_server_url_reaches_the_endpoint(served: Served, suffix: str) -> None:
    client = Phraser(url=served.base_url + suffix, model="m")
    try:
        assert await client.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) == PHRASED
    finally:
        await client.aclose()
    assert served.model.paths == ["/v1/chat/completions"]


@pytest.mark.parametrize(
    ("mode", "content", "reason"),
    [
        ("error", PHRASED, "HTTP 500"),
        ("malformed", PHRASED, "not JSON"),
        ("no-choices", PHRASED, "no message content"),
        ("ok", "   \n", "empty answer"),
        # 20.9 °C is gone: the user asked for figures and would lose one.
        ("ok", "Your greenhouse reads 21.5 °C as of 14:05 UTC.", "dropped a figure"),
        # 14:05 became 2:05 PM: the hour 14 is missing.
        ("ok", "It reads 21.5 °C at 2:05 PM, mean 20.9 °C.", "dropped a figure"),
        ("ok", "It reads 21.5 °C at 14:05 UTC, mean 20.9 °C, up 3.2 °C.", "found nowhere"),
        ("ok", "21.5 °C at 14:05, mean 20.9 °C. " + "Blah. " * 400, "too long"),
    ],
)
async def test_a_failure_or_a_garbled_answer_gives_none_and_one_warning(
    phraser: Phraser,
    served: Served,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    content: str,
    reason: str,
) -> None:
    served.model.mode, served.model.content = mode, content
    with caplog.at_level(logging.WARNING, logger="services.chat.chat.llm"):
        assert await phraser.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) is None
    (record,) = caplog.records
    message = record.getMessage()
    assert reason in message
    # Never the user's question, facts or the model's answer in the log.
    for private in ("Greenhouse", "greenhouse", "21.5", "20.9"):
        assert private not in message


async def test_a_timeout_gives_none(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    served.model.mode = "slow"
    client = Phraser(url=served.base_url, model="m", timeout=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="services.chat.chat.llm"):
            assert await client.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) is None
    finally:
        await client.aclose()
    assert "timed out" in caplog.records[0].getMessage()


async def test_a_server_that_is_not_there_gives_none() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nobody listens
    client = Phraser(url=f"http://127.0.0.1:{port}", model="m", timeout=1.0)
    try:
        assert await client.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) is None
    finally:
        await client.aclose()


async def test_an_unusable_url_gives_none() -> None:
    client = Phraser(url="http://[::1", model="m")
    try:
        assert await client.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) is None
    finally:
        await client.aclose()


async def test_reworded_figures_and_a_thinking_block_are_accepted(
    phraser: Phraser, served: Served
) -> None:
    served.model.content = (
        "<think>The user wants the reading.</think>\n"
        "As of 14:05 UTC the greenhouse is at 21.50 °C; the past hour averaged 20.9 °C."
    )
    assert await phraser.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) == (
        "As of 14:05 UTC the greenhouse is at 21.50 °C; the past hour averaged 20.9 °C."
    )


async def test_a_figure_from_the_facts_may_be_added(phraser: Phraser, served: Served) -> None:
    served.model.content = "On 2026-03-14 at 14:05 UTC it read 21.5 °C; hourly mean 20.9 °C."
    assert await phraser.phrase(question=QUESTION, facts=FACTS, draft=DRAFT) is not None


async def test_a_sign_is_a_figure(phraser: Phraser, served: Served) -> None:
    draft = "Humidity and temperature correlate at -0.82 (p = 0.001)."
    served.model.content = "Humidity and temperature correlate at 0.82 (p = 0.001)."
    assert await phraser.phrase(question="are they related", facts="", draft=draft) is None
    served.model.content = "They move in opposite directions: r = \u22120.82, p = 0.001."
    assert await phraser.phrase(question="are they related", facts="", draft=draft) is not None


def test_completions_url_forms() -> None:
    assert completions_url("http://localhost:11434") == "http://localhost:11434/v1/chat/completions"
    assert completions_url("http://vllm:8000/v1/") == "http://vllm:8000/v1/chat/completions"
    assert (
        completions_url(" https://api.example.com/v1/chat/completions ")
        == "https://api.example.com/v1/chat/completions"
    )


def test_figures_are_canonical() -> None:
    assert figures("21.5 °C at 14:05 on 2026-01-01") == {"21.5", "14", "5", "2026", "1"}
    assert figures("1,234.50 readings, 3,5 mm") == {"1234.5", "3.5"}
    assert figures("r = -0.8, lag (\u221212) s") == {"-0.8", "-12"}
    assert figures("sensor3 and v1.2") == set()
    assert figures("no numbers here") == set()


@given(
    st.decimals(min_value=-1_000_000, max_value=1_000_000, places=3, allow_nan=False),
    st.sampled_from(["The value is {} °C.", "{} readings", "at {}, then", "({})"]),
)
def test_a_number_written_in_text_is_found_as_itself(value: Any, template: str) -> None:
    written = format(value, "f")
    expected = figures(written)
    assert len(expected) == 1
    assert figures(template.format(written)) == expected
