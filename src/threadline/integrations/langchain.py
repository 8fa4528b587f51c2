"""LangChain over Threadline: a chat message history and a retriever, both through the SDK.

Install with ``pip install 'threadline[langchain]'``.

    from threadline.client import Threadline
    from threadline.integrations.langchain import ThreadlineChatMessageHistory

    tl = Threadline()  # THREADLINE_URL, THREADLINE_API_KEY
    history = ThreadlineChatMessageHistory.start(tl, contact={"name": "Ada"})
    history.add_messages([HumanMessage("Hi"), AIMessage("Hello! How can I help?")])
    history.messages  # read back from the conversation, in seq order

How messages map (exactly, both ways):

- ``HumanMessage`` is role ``user``, ``AIMessage`` ``assistant``, ``SystemMessage``
  ``system``, ``ToolMessage`` ``tool`` (with its ``tool_call_id``); a ``ChatMessage`` whose
  role is one of those four maps to it.
- ``AIMessage.tool_calls`` are stored as OpenAI tool calls (arguments as a JSON string), so
  every other Threadline reader (the context endpoint, OpenAI's API) sees them unchanged.
- What Threadline has no column for (the message's LangChain ``id``, ``additional_kwargs``,
  ``response_metadata``, ``usage_metadata``, ``invalid_tool_calls``, a tool message's
  ``status`` and ``artifact``, content given as a list of blocks) is kept under
  ``metadata["langchain"]`` and restored on read.
- A message with a LangChain ``id`` is stored with ``external_message_id = "lc:<id>"``, so
  adding the same message again stores nothing.

``clear()`` deletes nothing: the conversation is archived (it stays in Threadline's history
and audit trail) and the history moves on to a new conversation with the same contact,
channel, inbox and title, whose ``metadata["previous_conversation_id"]`` names the old one.
``conversation_id`` is then the new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from threadline.client import (
    ID,
    AsyncThreadline,
    Conversation,
    Message,
    SearchHit,
    SearchMode,
    Threadline,
)

__all__ = [
    "ThreadlineChatMessageHistory",
    "ThreadlineRetriever",
    "from_threadline",
    "to_threadline",
]

_ROLES: dict[type[BaseMessage], str] = {
    HumanMessage: "user",
    AIMessage: "assistant",
    SystemMessage: "system",
    ToolMessage: "tool",
}
_KEPT = ("id", "additional_kwargs", "response_metadata")


def _text(content: str | list[str | dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    parts = [
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or block.get("type") == "text"
    ]
    return "".join(parts)


def to_threadline(message: BaseMessage) -> dict[str, Any]:
    """The Threadline message (the API's fields) for a LangChain message."""
    role = next((r for cls, r in _ROLES.items() if isinstance(message, cls)), None)
    if isinstance(message, ChatMessage) and message.role in _ROLES.values():
        role = message.role
    if role is None:
        raise ValueError(f"Threadline cannot store a {type(message).__name__}")
    extra: dict[str, Any] = {k: getattr(message, k) for k in _KEPT if getattr(message, k)}
    text = _text(message.content)
    if not isinstance(message.content, str):
        extra["content"] = message.content
    out: dict[str, Any] = {"role": role, "content": text}
    if message.name:
        out["name"] = message.name
    if message.id:
        out["external_message_id"] = f"lc:{message.id}"
    if isinstance(message, AIMessage):
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
                }
                for call in message.tool_calls
            ]
            if text == "" and "content" not in extra:
                out["content"] = None  # OpenAI's form of a message that only calls tools
        if message.invalid_tool_calls:
            extra["invalid_tool_calls"] = message.invalid_tool_calls
        if message.usage_metadata:
            extra["usage_metadata"] = dict(message.usage_metadata)
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
        if message.status != "success":
            extra["status"] = message.status
        if message.artifact is not None:
            extra["artifact"] = message.artifact
    if extra:
        out["metadata"] = {"langchain": extra}
    return out


def from_threadline(message: Message) -> BaseMessage:
    """The LangChain message for a Threadline message."""
    extra: dict[str, Any] = dict((message.metadata or {}).get("langchain") or {})
    content = extra.pop("content", message.content or "")
    fields: dict[str, Any] = {"content": content, "id": extra.pop("id", message.id)}
    fields |= {k: extra.pop(k) for k in ("additional_kwargs", "response_metadata") if k in extra}
    if message.name:
        fields["name"] = message.name
    if message.role == "user":
        return HumanMessage(**fields)
    if message.role == "system":
        return SystemMessage(**fields)
    if message.role == "tool":
        return ToolMessage(tool_call_id=message.tool_call_id or "", **fields, **extra)
    if message.role == "assistant":
        calls, invalid = [], list(extra.pop("invalid_tool_calls", []))
        for call in message.tool_calls or []:
            function = call.get("function") or {}
            try:
                args = json.loads(function.get("arguments") or "{}")
            except ValueError:
                args = None
            if isinstance(args, dict):
                calls.append({"name": function.get("name"), "args": args, "id": call.get("id")})
            else:
                invalid.append(
                    {
                        "name": function.get("name"),
                        "args": function.get("arguments"),
                        "id": call.get("id"),
                        "error": "arguments are not a JSON object",
                    }
                )
        return AIMessage(**fields, tool_calls=calls, invalid_tool_calls=invalid, **extra)
    return ChatMessage(role=message.role, **fields)


class ThreadlineChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history kept in one Threadline conversation.

    Reads list the conversation's messages in ``seq`` order; ``add_messages`` appends them
    in one batch (all or nothing) under one idempotency key, so a retried call stores them
    once. Pass ``async_client`` for native async (``aget_messages``, ``aadd_messages``,
    ``aclear``); without it they run the sync calls in a thread.
    """

    def __init__(
        self,
        client: Threadline,
        conversation_id: ID,
        *,
        async_client: AsyncThreadline | None = None,
    ) -> None:
        self.client = client
        self.async_client = async_client
        self.conversation_id = str(conversation_id)

    @classmethod
    def start(
        cls,
        client: Threadline,
        *,
        async_client: AsyncThreadline | None = None,
        **conversation: Any,
    ) -> ThreadlineChatMessageHistory:
        """A history in a new conversation (``conversation``: the fields of
        ``client.conversations.create``, e.g. ``contact={"name": ...}`` or ``contact_id``)."""
        conv = client.conversations.create(**conversation)
        return cls(client, conv.id, async_client=async_client)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        pager = self.client.messages.list(self.conversation_id, limit=500)
        return [from_threadline(m) for m in pager]

    async def aget_messages(self) -> list[BaseMessage]:
        if self.async_client is None:
            return await super().aget_messages()
        pager = self.async_client.messages.list(self.conversation_id, limit=500)
        return [from_threadline(m) async for m in pager]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        if messages:
            batch = [to_threadline(m) for m in messages]
            self.client.messages.batch(self.conversation_id, batch)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if self.async_client is None:
            return await super().aadd_messages(messages)
        if messages:
            batch = [to_threadline(m) for m in messages]
            await self.async_client.messages.batch(self.conversation_id, batch)
        return None

    def clear(self) -> None:
        """Archive the conversation and continue in a new one (see the module's docs)."""
        old = self.client.conversations.get(self.conversation_id)
        new = self.client.conversations.create(**_successor(old))
        if old.status != "archived":
            self.client.conversations.update(old.id, status="archived")
        self.conversation_id = new.id

    async def aclear(self) -> None:
        if self.async_client is None:
            return await super().aclear()
        old = await self.async_client.conversations.get(self.conversation_id)
        new = await self.async_client.conversations.create(**_successor(old))
        if old.status != "archived":
            await self.async_client.conversations.update(old.id, status="archived")
        self.conversation_id = new.id
        return None


def _successor(old: Conversation) -> dict[str, Any]:
    return {
        "contact_id": old.contact_id,
        "channel": old.channel,
        "inbox_id": old.inbox_id,
        "title": old.title,
        "metadata": {**old.metadata, "previous_conversation_id": old.id},
    }


def to_document(hit: SearchHit) -> Document:
    """A search hit as a LangChain document: the message's text, and where it came from."""
    m = hit.message
    metadata = {
        "message_id": m.id,
        "conversation_id": hit.conversation_id,
        "score": hit.score,
        "highlight": hit.highlight,
        "role": m.role,
        "seq": m.seq,
        "occurred_at": m.occurred_at.isoformat(),
    }
    return Document(page_content=m.content or "", id=m.id, metadata=metadata)


class ThreadlineRetriever(BaseRetriever):
    """A LangChain retriever over Threadline's search (``GET /v1/search``).

    Each document is one message (``page_content`` its text, ``metadata`` its ids, role,
    seq, time, score and highlight), best first, at most ``k``. The filters narrow every
    search to one contact, channel, inbox, role or time range.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Threadline | None = None
    async_client: AsyncThreadline | None = None
    mode: SearchMode = "hybrid"
    k: int = 10
    contact_id: str | None = None
    channel: str | None = None
    inbox_id: str | None = None
    role: str | None = None
    since: str | None = None
    until: str | None = None

    def _filters(self) -> Mapping[str, Any]:
        return {
            "mode": self.mode,
            "limit": self.k,
            "contact_id": self.contact_id,
            "channel": self.channel,
            "inbox_id": self.inbox_id,
            "role": self.role,
            "since": self.since,
            "until": self.until,
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.client is None:
            raise ValueError("ThreadlineRetriever needs a client for sync calls")
        return [to_document(h) for h in self.client.search(query, **self._filters()).data]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        found = await self.async_client.search(query, **self._filters())
        return [to_document(h) for h in found.data]
