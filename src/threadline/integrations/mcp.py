"""An MCP server over Threadline: the tools an agent (Claude Desktop, an IDE, any MCP client)
needs to find what was said, read a conversation as a model should, add to it, and decide
the replies an AI drafted. Each tool is one call through the SDK to a Threadline server.

Install with ``pip install 'threadline[mcp]'`` and run ``threadline mcp`` (stdio) or
``threadline mcp --transport http`` (streamable HTTP on ``/mcp``), with ``THREADLINE_URL``
and ``THREADLINE_API_KEY`` naming the server and its key.

A tool whose endpoint the server does not have (an older server) answers an error saying
so; every other error answers the API's code and message, e.g.
``404 not_found: conversation not found``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from threadline.client import (
    APIError,
    AsyncThreadline,
    ConnectionFailed,
    EndpointNotFound,
    Message,
    ValidationError,
)

__all__ = ["TOOLS", "create_server"]

T = TypeVar("T")

INSTRUCTIONS = """Threadline stores every conversation an AI agent has with people, across SMS,
WhatsApp, email, web chat and voice. Use search_messages to find what was said (by words or by
meaning), list_conversations and get_messages to read, get_context for the LLM-ready window of
a conversation, append_message to record a message and send_message to send a reply through
the conversation's channel, list_suggestions and decide_suggestion to approve, edit or reject
replies an AI drafted."""

#: The tools, in the order they are listed.
TOOLS = (
    "search_messages",
    "list_conversations",
    "get_messages",
    "get_context",
    "append_message",
    "send_message",
    "list_suggestions",
    "decide_suggestion",
)


async def _call(what: str, result: Awaitable[T]) -> T:
    """Await one SDK call; its errors become tool errors a model can read."""
    try:
        return await result
    except EndpointNotFound as exc:
        raise ToolError(
            f"{what} is not available: this Threadline server has no such endpoint yet "
            f"({exc.status} {exc.code})"
        ) from None
    except APIError as exc:
        raise ToolError(f"{what} failed: {exc}") from None
    except ConnectionFailed as exc:
        raise ToolError(f"{what} failed: {exc.message}") from None


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "role": m.role,
        "content": m.content,
        "occurred_at": m.occurred_at.isoformat(),
    }
    for name in ("tool_calls", "tool_call_id", "name", "delivery_status"):
        if getattr(m, name) is not None:
            out[name] = getattr(m, name)
    return out


def create_server(client: AsyncThreadline) -> MCPServer[Any]:
    """The MCP server, its tools calling Threadline through ``client``."""
    server: MCPServer[Any] = MCPServer(
        name="threadline", instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool()
    async def search_messages(
        query: str,
        mode: Literal["keyword", "semantic", "hybrid"] = "hybrid",
        contact_id: str | None = None,
        channel: str | None = None,
        inbox_id: str | None = None,
        role: Literal["user", "assistant", "system", "tool"] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        """Search every conversation's messages by words (keyword), meaning (semantic) or
        both (hybrid). since/until are ISO 8601 times. Best matches first."""
        found = await _call(
            "search",
            client.search(
                query,
                mode=mode,
                contact_id=contact_id,
                channel=channel,
                inbox_id=inbox_id,
                role=role,
                since=since,
                until=until,
                limit=limit,
            ),
        )
        return {
            "mode": found.mode,
            "results": [
                {"score": h.score, "highlight": h.highlight, "message": _message(h.message)}
                for h in found.data
            ],
        }

    @server.tool()
    async def list_conversations(
        status: Literal["active", "needs_reply", "waiting", "escalated", "archived"] | None = None,
        channel: str | None = None,
        contact_id: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """Conversations with the most recent activity first, filtered by status (e.g.
        needs_reply), channel or contact."""
        pager = client.conversations.list(
            status=status, channel=channel, contact_id=contact_id, limit=limit
        )
        page = await _call("list_conversations", pager.first_page())
        return {
            "conversations": [
                c.model_dump(mode="json", exclude={"messages", "events"}) for c in page.data
            ]
        }

    @server.tool()
    async def get_messages(conversation_id: str, limit: int = 50) -> dict[str, Any]:
        """The newest messages of a conversation (at most limit), oldest first."""
        pager = client.messages.list(conversation_id, latest=True, limit=limit)
        page = await _call("get_messages", pager.first_page())
        return {"messages": [_message(m) for m in page.data]}

    @server.tool()
    async def get_context(
        conversation_id: str,
        format: Literal["openai", "anthropic", "langchain"] = "openai",
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The conversation as a model should see it: system prompt, summary of older
        history and the newest messages within max_tokens, in the chosen format."""
        context = await _call(
            "get_context",
            client.conversations.context(conversation_id, format=format, max_tokens=max_tokens),
        )
        return context.model_dump(mode="json")

    @server.tool()
    async def append_message(
        conversation_id: str,
        role: Literal["user", "assistant", "system", "tool"],
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        external_message_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Record a message in a conversation (nothing is sent). tool_calls are in OpenAI's
        format; a tool message needs tool_call_id. The same idempotency_key or
        external_message_id again answers the original and stores nothing."""
        message = await _call(
            "append_message",
            client.messages.append(
                conversation_id,
                role=role,
                content=content,
                tool_calls=tool_calls,
                tool_call_id=tool_call_id,
                name=name,
                external_message_id=external_message_id,
                idempotency_key=idempotency_key,
            ),
        )
        return _message(message)

    @server.tool()
    async def send_message(
        conversation_id: str, content: str, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Send a reply to the contact through the conversation's channel (SMS, WhatsApp,
        email ...). It is stored at once; delivery_status follows the channel's answers."""
        try:
            message = await client.messages.append(
                conversation_id,
                role="assistant",
                content=content,
                idempotency_key=idempotency_key,
                send=True,
            )
        except ValidationError as exc:
            if "send" in str(exc.details):
                raise ToolError(
                    "send_message is not available: this Threadline server does not send "
                    "messages yet (append_message records one without sending)"
                ) from None
            raise ToolError(f"send_message failed: {exc}") from None
        except (APIError, ConnectionFailed) as exc:
            raise ToolError(f"send_message failed: {exc}") from None
        return _message(message)

    @server.tool()
    async def list_suggestions(
        status: Literal["pending", "approved", "edited", "rejected"] | None = "pending",
        conversation_id: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """Replies an AI drafted, by default the ones pending a person's decision."""
        pager = client.suggestions.list(status=status, conversation_id=conversation_id, limit=limit)
        page = await _call("list_suggestions", pager.first_page())
        return {"suggestions": [s.model_dump(mode="json") for s in page.data]}

    @server.tool()
    async def decide_suggestion(
        suggestion_id: str,
        decision: Literal["approve", "reject"],
        content: str | None = None,
        feedback: str | None = None,
    ) -> dict[str, Any]:
        """Approve a drafted reply (it is sent; give content to send an edited text
        instead) or reject it (feedback says why)."""
        if decision == "approve":
            done = client.suggestions.approve(suggestion_id, content=content)
        else:
            done = client.suggestions.reject(suggestion_id, feedback=feedback)
        suggestion = await _call("decide_suggestion", done)
        return suggestion.model_dump(mode="json")

    return server
