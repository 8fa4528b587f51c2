from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from threadline.domain.enums import DeliveryStatus, Direction, MessageType, Role, SenderType
from threadline.schemas.common import Count, Input, JSONObject, Output, Score, Timestamp

Short = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ModelName = Annotated[str, StringConstraints(max_length=200)]


class ToolFunction(Input):
    name: Short
    arguments: str = Field(
        description="The arguments as a JSON-encoded string, as OpenAI sends them."
    )

    @field_validator("arguments")
    @classmethod
    def _json_string(cls, value: str) -> str:
        try:
            json.loads(value)
        except ValueError:
            raise ValueError("arguments must be a string holding valid JSON") from None
        return value


class ToolCall(Input):
    """One tool call in OpenAI's chat-completions format."""

    id: Short
    type: Literal["function"] = "function"
    function: ToolFunction


_EXAMPLES: list[JsonValue] = [
    {"role": "user", "content": "Hi, do you do kitchen remodels?", "external_message_id": "SM123"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "check_calendar", "arguments": '{"day": "friday"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"free": ["10:00"]}'},
]


class MessageCreate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": _EXAMPLES})

    role: Role
    content: str | None = Field(None, description="Text; the size limit is a server setting.")
    content_html: str | None = None
    message_type: MessageType = MessageType.TEXT
    sender_type: SenderType | None = Field(None, description="Defaults from role and direction.")
    direction: Direction | None = Field(
        None, description="Defaults to inbound for user, else outbound."
    )
    tool_calls: list[ToolCall] | None = Field(None, min_length=1)
    tool_call_id: Short | None = None
    name: Short | None = None
    parent_message_id: uuid.UUID | None = None
    thread_id: Short | None = None
    external_message_id: Short | None = Field(
        None, description="The provider's id; a second message with the same id is a replay."
    )
    external_conversation_id: Short | None = None
    delivery_status: DeliveryStatus | None = None
    attachments: list[JSONObject] | None = None
    channel_data: JSONObject | None = None
    model_used: ModelName | None = None
    prompt_used: str | None = None
    token_usage: JSONObject | None = None
    cost_usd: Score | None = Field(None, ge=0)
    response_time_ms: Count | None = None
    is_flagged: bool = False
    flagged_reason: str | None = None
    quality_score: Score | None = None
    metadata: JSONObject | None = None
    occurred_at: Timestamp | None = Field(
        None, description="When it really happened (provider or client time); defaults to now."
    )
    send: bool = Field(
        False,
        description="Send it through the conversation's inbox: stored with delivery_status "
        "queued, then sent by a worker. Outbound messages only; the conversation needs an "
        "inbox (else 422). On WhatsApp outside the 24-hour window only a template "
        '(message_type "template", channel_data.template) may be sent (else 409).',
    )

    @model_validator(mode="after")
    def _roles(self) -> MessageCreate:
        if self.role == Role.TOOL and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.tool_calls and self.role != Role.ASSISTANT:
            raise ValueError("only assistant messages carry tool_calls")
        if self.tool_call_id and self.role != Role.TOOL:
            raise ValueError("only tool messages carry tool_call_id")
        return self

    def to_columns(self) -> dict[str, Any]:
        data = self.model_dump(exclude_unset=True, exclude={"send"}, mode="python")
        if self.tool_calls is not None:
            data["tool_calls"] = [c.model_dump(mode="json") for c in self.tool_calls]
        return data


class MessageBatch(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"messages": _EXAMPLES[:1]}]})

    messages: list[MessageCreate] = Field(min_length=1)


class MessageRead(Output):
    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    role: Role
    sender_type: SenderType
    direction: Direction
    message_type: MessageType
    content: str | None
    content_html: str | None
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    name: str | None
    parent_message_id: uuid.UUID | None
    thread_id: str | None
    external_message_id: str | None
    external_conversation_id: str | None
    delivery_status: DeliveryStatus | None
    delivery_error: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    attachments: list[dict[str, Any]] | None
    channel_data: dict[str, Any] | None
    model_used: str | None
    prompt_used: str | None
    token_usage: dict[str, Any] | None
    cost_usd: float | None
    response_time_ms: int | None
    is_flagged: bool
    flagged_reason: str | None
    quality_score: float | None
    metadata: dict[str, Any] | None
    occurred_at: datetime
    created_at: datetime


class MessageList(Output):
    data: list[MessageRead]
    next_cursor: str | None = None
