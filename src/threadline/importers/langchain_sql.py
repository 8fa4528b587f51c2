"""LangChain's ``SQLChatMessageHistory`` table (``message_store``: ``id``, ``session_id``,
``message``) from a database URL: one conversation per session, in ``id`` order.

Each ``message`` is LangChain's JSON (``{"type": "human"|"ai"|"system"|"tool"|"chat", "data":
{...}}``); AI tool calls (``data.tool_calls``, else ``additional_kwargs.tool_calls``) become
OpenAI tool calls, a tool message keeps its ``tool_call_id``. The row id is the legacy
message id; a bad row is reported as ``row ID``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from threadline.importers import base
from threadline.importers.base import Bad, BadValue, Legacy


def langchain_tool_calls(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """LangChain's ``tool_calls`` (name, args, id) as OpenAI's, else the raw OpenAI ones."""
    calls = data.get("tool_calls")
    if calls:
        if not isinstance(calls, list):
            raise BadValue("tool_calls must be a list")
        out = []
        for call in calls:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise BadValue("a tool call needs a name")
            out.append(
                {
                    "id": call.get("id"),
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": json.dumps(call.get("args", {})),
                    },
                }
            )
        return base.tool_calls_openai(out)
    kwargs = data.get("additional_kwargs") or {}
    return base.tool_calls_openai(kwargs.get("tool_calls") if isinstance(kwargs, dict) else None)


def from_langchain(
    fmt: str, legacy_id: str, kind: Any, data: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One LangChain message (its type and fields) as an ``Ingest`` item."""
    if kind == "chat":
        kind = data.get("role")
    role = base.role(kind)
    content, attachments = base.text(data.get("content"))
    calls = langchain_tool_calls(data) if role == base.Role.ASSISTANT else None
    if calls and not content:
        content = None
    return base.message(
        fmt,
        legacy_id,
        role,
        content,
        name=data.get("name") if isinstance(data.get("name"), str) else None,
        tool_calls=calls,
        tool_call_id=data.get("tool_call_id"),
        attachments=attachments or None,
        **extra,
    )


class LangChainImporter:
    name = "langchain"

    def __init__(self, table: str = "message_store") -> None:
        self.table = table

    def read(self, source: str) -> Iterator[Legacy | Bad]:
        engine = base.engine_for(source)
        sessions: dict[str, Legacy] = {}
        try:
            for row in base.rows_of(engine, self.table, "id"):
                where = f"row {row.get('id')}"
                try:
                    raw = row["message"]
                    message = json.loads(raw) if isinstance(raw, str) else raw
                    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
                        raise BadValue('expected {"type": ..., "data": {...}}')
                    item = from_langchain(
                        self.name, str(row["id"]), message.get("type"), message["data"]
                    )
                except (ValueError, KeyError) as exc:
                    yield Bad(where, f"not a LangChain message ({exc})")
                    continue
                except BadValue as exc:
                    yield Bad(where, str(exc))
                    continue
                session = str(row["session_id"])
                if session not in sessions:
                    sessions[session] = Legacy(session, f"session {session}", [])
                sessions[session].messages.append(item)
        finally:
            engine.dispose()
        yield from sessions.values()
