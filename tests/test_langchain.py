"""LangChain over Threadline: contract tests for the chat message history (langchain-tests has
no standard suite for histories; these follow LangChain's history docs), run with the sync
and the async client against the real app, and the retriever over the search contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from conftest import TenantKey
from threadline.client import AsyncThreadline, RetryPolicy, Threadline
from threadline.client.testing import ASGIBridge, Flaky, in_process, lifespan
from threadline.integrations.langchain import (
    ThreadlineChatMessageHistory,
    ThreadlineRetriever,
    from_threadline,
    to_threadline,
)

KINDS = ["sync", "async"]
NO_WAIT = RetryPolicy(max_retries=2, backoff=0.0, max_backoff=0.0)

TOOL_TURN: list[BaseMessage] = [
    SystemMessage("You book appointments.", id="m0"),
    HumanMessage("Is Friday free?", id="m1", name="ada"),
    AIMessage(
        "",
        id="m2",
        tool_calls=[
            {"name": "check_calendar", "args": {"day": "friday", "slots": [10, 11]}, "id": "c1"},
            {"name": "check_weather", "args": {}, "id": "c2"},
        ],
        usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
    ),
    ToolMessage('{"free": ["10:00"]}', tool_call_id="c1", id="m3", name="check_calendar"),
    ToolMessage("weather service down", tool_call_id="c2", id="m4", status="error"),
    AIMessage(
        [{"type": "text", "text": "Friday at 10 is free."}],
        id="m5",
        additional_kwargs={"refusal": None},
    ),
]


class History:
    """One history, driven through its sync or its async methods."""

    def __init__(self, kind: str, history: ThreadlineChatMessageHistory) -> None:
        self.kind, self.h = kind, history

    async def messages(self) -> list[BaseMessage]:
        return self.h.messages if self.kind == "sync" else await self.h.aget_messages()

    async def add(self, messages: list[BaseMessage]) -> None:
        if self.kind == "sync":
            self.h.add_messages(messages)
        else:
            await self.h.aadd_messages(messages)

    async def clear(self) -> None:
        if self.kind == "sync":
            self.h.clear()
        else:
            await self.h.aclear()


@asynccontextmanager
async def open_history(
    kind: str, app: Any, key: str, faults: list[Any] | None = None
) -> AsyncIterator[tuple[History, Threadline, Flaky]]:
    sync_flaky = Flaky(ASGIBridge(app), faults=list(faults or []) if kind == "sync" else [])
    with Threadline("http://tl.test", key, transport=sync_flaky, retries=NO_WAIT) as tl:
        if kind == "sync":
            history = ThreadlineChatMessageHistory.start(tl, contact={"name": "Ada"})
            yield History(kind, history), tl, sync_flaky
            return
        inner = httpx.ASGITransport(app, raise_app_exceptions=False)
        flaky = Flaky(inner, faults=list(faults or []))
        async with (
            lifespan(app),
            AsyncThreadline("http://tl.test", key, transport=flaky, retries=NO_WAIT) as atl,
        ):
            conv = await atl.conversations.create(contact={"name": "Ada"})
            history = ThreadlineChatMessageHistory(tl, conv.id, async_client=atl)
            yield History(kind, history), tl, flaky


@pytest.mark.parametrize("kind", KINDS)
def test_history_contract(kind: str, app: Any, tenant: TenantKey) -> None:
    async def scenario() -> None:
        async with open_history(kind, app, tenant.token) as (history, tl, _):
            assert await history.messages() == []
            await history.add([HumanMessage("Hi", id="a"), AIMessage("Hello!", id="b")])
            await history.add([HumanMessage("Book me in", id="c")])
            got = await history.messages()
            assert got == [
                HumanMessage("Hi", id="a"),
                AIMessage("Hello!", id="b"),
                HumanMessage("Book me in", id="c"),
            ]
            # Messages without a LangChain id read back with Threadline's id.
            history.h.add_user_message("no id")
            last = (await history.messages())[-1]
            assert last.content == "no id" and last.id
            stored = list(tl.messages.list(history.h.conversation_id))
            assert last.id == stored[-1].id

            # Adding the same messages again stores nothing.
            await history.add([HumanMessage("Hi", id="a")])
            assert len(await history.messages()) == 4

    anyio.run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_tool_calls_round_trip_exactly(kind: str, app: Any, tenant: TenantKey) -> None:
    async def scenario() -> None:
        async with open_history(kind, app, tenant.token) as (history, tl, _):
            await history.add(TOOL_TURN)
            assert await history.messages() == TOOL_TURN

            # Stored in OpenAI's format, which every other reader understands.
            conv_id = history.h.conversation_id
            stored = list(tl.messages.list(conv_id))
            assert [m.role for m in stored] == [
                "system",
                "user",
                "assistant",
                "tool",
                "tool",
                "assistant",
            ]
            assert stored[2].content is None
            assert stored[2].tool_calls == [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "check_calendar",
                        "arguments": json.dumps({"day": "friday", "slots": [10, 11]}),
                    },
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "check_weather", "arguments": "{}"},
                },
            ]
            assert (stored[3].tool_call_id, stored[5].content) == ("c1", "Friday at 10 is free.")
            context = tl.conversations.context(conv_id, format="openai")
            assert context.messages[2]["tool_calls"] == stored[2].tool_calls

    anyio.run(scenario)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", KINDS)
def test_add_messages_is_one_batch_stored_once_when_retried(
    kind: str, app: Any, tenant: TenantKey
) -> None:
    async def scenario() -> None:
        async with open_history(kind, app, tenant.token) as (history, _, flaky):
            flaky.faults[:] = ["drop"]
            flaky.requests.clear()
            await history.add([HumanMessage("one"), AIMessage("two")])  # no ids to dedupe by
            assert [r.url.path.rsplit("/", 1)[-1] for r in flaky.requests] == ["batch", "batch"]
            assert len({r.headers["Idempotency-Key"] for r in flaky.requests}) == 1
            assert [m.content for m in await history.messages()] == ["one", "two"]

    anyio.run(scenario)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", KINDS)
def test_clear_archives_and_starts_a_new_conversation(
    kind: str, app: Any, tenant: TenantKey
) -> None:
    async def scenario() -> None:
        async with open_history(kind, app, tenant.token) as (history, tl, _):
            await history.add([HumanMessage("old news")])
            old = tl.conversations.get(history.h.conversation_id)
            await history.clear()
            assert await history.messages() == []
            new = tl.conversations.get(history.h.conversation_id)
            assert new.id != old.id and new.contact_id == old.contact_id
            assert new.metadata["previous_conversation_id"] == old.id
            archived = tl.conversations.get(old.id)
            assert archived.status == "archived" and archived.message_count == 1
            await history.add([HumanMessage("fresh start")])
            assert [m.content for m in await history.messages()] == ["fresh start"]

    anyio.run(scenario)


# Deprecated in langchain-core 1 in favour of LangGraph's persistence, but still what most
# code that uses a chat history is built on.
@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
@pytest.mark.parametrize("backend", ["sqlite"])
def test_runnable_with_message_history_keeps_the_turns(app: Any, tenant: TenantKey) -> None:
    """The documented way to use a history: a chain wrapped in RunnableWithMessageHistory."""
    model = GenericFakeChatModel(messages=iter([AIMessage("Hello Ada"), AIMessage("Still here")]))
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    with in_process(app, tenant.token) as tl:
        sessions: dict[str, ThreadlineChatMessageHistory] = {}

        def get_history(session_id: str) -> ThreadlineChatMessageHistory:
            if session_id not in sessions:
                sessions[session_id] = ThreadlineChatMessageHistory.start(
                    tl, contact={"name": session_id}
                )
            return sessions[session_id]

        chain = RunnableWithMessageHistory(
            prompt | model,
            get_history,
            input_messages_key="question",
            history_messages_key="history",
        )
        config: Any = {"configurable": {"session_id": "ada"}}
        chain.invoke({"question": "Hi, I'm Ada"}, config=config)
        chain.invoke({"question": "Are you there?"}, config=config)
        conv_id = sessions["ada"].conversation_id
        stored = [(m.role, m.content) for m in tl.messages.list(conv_id)]
    assert stored == [
        ("user", "Hi, I'm Ada"),
        ("assistant", "Hello Ada"),
        ("user", "Are you there?"),
        ("assistant", "Still here"),
    ]


def test_messages_threadline_cannot_store_are_refused() -> None:
    with pytest.raises(ValueError, match="FunctionMessage"):
        to_threadline(FunctionMessage("x", name="f"))


def test_tool_call_arguments_that_are_not_an_object_read_as_invalid_tool_calls() -> None:
    from threadline.client import Message

    message = Message.model_validate(
        {
            "id": "m",
            "conversation_id": "c",
            "seq": 1,
            "role": "assistant",
            "sender_type": "agent",
            "direction": "outbound",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
            ],
            "occurred_at": "2026-01-01T00:00:00Z",
            "created_at": "2026-01-01T00:00:00Z",
        }
    )
    read = from_threadline(message)
    assert isinstance(read, AIMessage) and read.tool_calls == []
    assert read.invalid_tool_calls[0]["args"] == "[1]"


# -- the retriever -----------------------------------------------------------------------


def _hit(content: str, score: float, seq: int) -> dict[str, Any]:
    return {
        "message": {
            "id": f"msg-{seq}",
            "conversation_id": "conv-1",
            "seq": seq,
            "role": "user",
            "sender_type": "contact",
            "direction": "inbound",
            "content": content,
            "occurred_at": "2026-03-01T10:00:00Z",
            "created_at": "2026-03-01T10:00:00Z",
        },
        "conversation_id": "conv-1",
        "score": score,
        "highlight": f"<mark>{content}</mark>",
    }


def _fake_search() -> tuple[list[dict[str, list[str]]], Callable[[httpx.Request], httpx.Response]]:
    """``GET /v1/search`` as DESIGN.md's integrations contract describes it."""
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/search"
        seen.append(parse_qs(urlsplit(str(request.url)).query))
        hits = [_hit("my sink leaks", 0.9, 3), _hit("the faucet drips", 0.7, 8)]
        return httpx.Response(200, json={"data": hits})

    return seen, handler


def test_retriever_turns_hits_into_documents() -> None:
    seen, handler = _fake_search()
    with Threadline("http://tl.test", "k", transport=httpx.MockTransport(handler)) as tl:
        retriever = ThreadlineRetriever(client=tl, mode="semantic", k=2, contact_id="ct-1")
        docs = retriever.invoke("plumbing trouble")
    assert seen == [
        {"q": ["plumbing trouble"], "mode": ["semantic"], "limit": ["2"], "contact_id": ["ct-1"]}
    ]
    assert [d.page_content for d in docs] == ["my sink leaks", "the faucet drips"]
    assert docs[0].id == "msg-3"
    assert docs[0].metadata == {
        "message_id": "msg-3",
        "conversation_id": "conv-1",
        "score": 0.9,
        "highlight": "<mark>my sink leaks</mark>",
        "role": "user",
        "seq": 3,
        "occurred_at": "2026-03-01T10:00:00+00:00",
    }


def test_retriever_async() -> None:
    seen, handler = _fake_search()

    async def scenario() -> list[str]:
        transport = httpx.MockTransport(handler)
        async with AsyncThreadline("http://tl.test", "k", transport=transport) as atl:
            retriever = ThreadlineRetriever(async_client=atl, channel="sms")
            return [d.page_content for d in await retriever.ainvoke("leak")]

    assert anyio.run(scenario) == ["my sink leaks", "the faucet drips"]
    assert seen[0]["mode"] == ["hybrid"] and seen[0]["channel"] == ["sms"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_retriever_against_the_real_search(app: Any, tenant: TenantKey) -> None:
    with in_process(app, tenant.token) as tl:
        conv = tl.conversations.create(contact={"name": "Ada"})
        tl.messages.batch(
            conv.id,
            [
                {"role": "user", "content": "My kitchen sink is leaking again"},
                {"role": "assistant", "content": "We can send a plumber on Friday"},
            ],
        )
        docs = ThreadlineRetriever(client=tl, mode="keyword", k=5).invoke("plumber")
        other = ThreadlineRetriever(client=tl, mode="keyword", role="user").invoke("plumber")
    assert [d.page_content for d in docs] == ["We can send a plumber on Friday"]
    assert docs[0].metadata["conversation_id"] == conv.id
    assert docs[0].metadata["role"] == "assistant" and "<mark>" in docs[0].metadata["highlight"]
    assert other == []
