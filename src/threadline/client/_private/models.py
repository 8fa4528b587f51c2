"""What the API answers with, as typed models.

These are the SDK's own models, not the server's schemas: they accept fields a newer server
adds (kept, reachable as attributes) and keep enum values as plain strings, so an older SDK
keeps reading a newer server. A test checks that every field of the server's ``*Read``
schemas exists here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Model(BaseModel):
    """Base of every SDK model: unknown fields are kept, never an error."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Contact(Model):
    id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class Message(Model):
    id: str
    conversation_id: str
    seq: int
    role: str
    sender_type: str
    direction: str
    message_type: str = "text"
    content: str | None = None
    content_html: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    parent_message_id: str | None = None
    thread_id: str | None = None
    external_message_id: str | None = None
    external_conversation_id: str | None = None
    delivery_status: str | None = None
    delivery_error: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    attachments: list[dict[str, Any]] | None = None
    channel_data: dict[str, Any] | None = None
    model_used: str | None = None
    prompt_used: str | None = None
    token_usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    response_time_ms: int | None = None
    is_flagged: bool = False
    flagged_reason: str | None = None
    quality_score: float | None = None
    metadata: dict[str, Any] | None = None
    occurred_at: datetime
    created_at: datetime


class Event(Model):
    id: str
    type: str
    data: Any = None
    created_at: datetime


class Conversation(Model):
    id: str
    contact_id: str | None = None
    inbox_id: str | None = None
    channel: str
    status: str
    title: str | None = None
    summary: str | None = None
    sentiment: float | None = None
    satisfaction_score: int | None = None
    outcome: str | None = None
    assignee_id: str | None = None
    external_conversation_id: str | None = None
    message_count: int = 0
    last_message_at: datetime | None = None
    last_activity_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    #: With ``include=["messages"]``: the newest messages, in seq order.
    messages: list[Message] | None = None
    #: With ``include=["events"]``: the first events.
    events: list[Event] | None = None


class Context(Model):
    """An LLM-ready window of a conversation, in the format asked for."""

    format: str
    messages: list[Any]
    token_count: int
    summary: str | None = None
    truncated: bool = False
    #: anthropic only: the system text, apart from the messages.
    system: str | None = None


class SearchHit(Model):
    """One message a search found, with its score and a highlighted excerpt."""

    message: Message
    conversation_id: str
    score: float
    highlight: str = ""


class SearchResults(Model):
    """What a search found, best first, and the mode that ran (keyword when a hybrid search
    found no embeddings)."""

    data: list[SearchHit]
    mode: str | None = None


class Suggestion(Model):
    """An AI-drafted reply waiting for (or past) a person's decision."""

    id: str
    conversation_id: str
    in_reply_to_message_id: str | None = None
    content: str
    edited_content: str | None = None
    confidence: float | None = None
    model: str | None = None
    token_usage: Any = None
    cost_usd: float | None = None
    status: str
    feedback: str | None = None
    decided_at: datetime | None = None
    sent_message_id: str | None = None
    created_at: datetime
    updated_at: datetime


class Inbox(Model):
    """One address on one channel; ``webhooks`` are the URLs to give the provider."""

    id: str
    name: str | None = None
    channel: str
    provider: str
    address: str
    mode: str
    agent_id: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    #: The names of the credentials stored (their values are never returned).
    credentials_set: list[str] = Field(default_factory=list)
    webhooks: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class Agent(Model):
    id: str
    name: str
    kind: str = "ai"
    model: str | None = None
    system_prompt: str | None = None
    tools: list[Any] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class Page(Model, Generic[T]):
    """One page of a list; ``next_cursor`` is None on the last."""

    data: list[T]
    next_cursor: str | None = None
