from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from threadline.domain.enums import Channel, ConversationStatus, EventType
from threadline.schemas.common import Input, JSONObject, Output, PageQuery, QueryParams
from threadline.schemas.contacts import ContactCreate
from threadline.schemas.messages import MessageRead

Title = Annotated[str, StringConstraints(max_length=500)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class ConversationCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"contact": {"name": "Ada", "phone": "+14155550100"}, "title": "Kitchen remodel"},
                {"contact_id": "019a0000-0000-7000-8000-000000000000", "channel": "api"},
            ]
        }
    )

    contact_id: uuid.UUID | None = Field(None, description="An existing contact.")
    contact: ContactCreate | None = Field(
        None, description="Found by phone, then email; created when neither matches."
    )
    channel: Channel | None = Field(None, description="Defaults to the inbox's channel, else api.")
    inbox_id: uuid.UUID | None = None
    title: Title | None = None
    assignee_id: uuid.UUID | None = None
    external_conversation_id: ExternalId | None = None
    metadata: JSONObject = Field(default_factory=dict)


class ConversationUpdate(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "archived"}, {"title": "Quote sent"}]}
    )

    status: ConversationStatus | None = None
    title: Title | None = None
    assignee_id: uuid.UUID | None = None
    metadata: JSONObject | None = None


class ConversationListQuery(PageQuery):
    """``GET /v1/conversations``: filters are exact matches."""

    status: ConversationStatus | None = None
    channel: Channel | None = None
    contact_id: uuid.UUID | None = None
    inbox_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None


class ConversationDetailQuery(QueryParams):
    include: list[Literal["messages", "events"]] = Field(
        default_factory=list,
        description="`messages` adds the newest 50 messages, `events` the first 100 events.",
    )


class EventListQuery(QueryParams):
    """``GET /v1/conversations/{id}/events``: in the order they happened."""

    limit: int = Field(100, ge=1, le=500, description="Page size, 1 to 500.")
    cursor: str | None = Field(
        None, max_length=512, description="The `next_cursor` of the previous page."
    )


class ConversationRead(Output):
    id: uuid.UUID
    contact_id: uuid.UUID | None
    inbox_id: uuid.UUID | None
    channel: Channel
    status: ConversationStatus
    title: str | None
    summary: str | None
    sentiment: float | None
    satisfaction_score: int | None
    outcome: str | None
    assignee_id: uuid.UUID | None
    external_conversation_id: str | None
    message_count: int
    last_message_at: datetime | None
    last_activity_at: datetime
    metadata: JSONObject = Field(validation_alias="metadata_")
    created_at: datetime
    updated_at: datetime


class EventRead(Output):
    id: uuid.UUID
    type: EventType
    data: Any
    created_at: datetime


class ConversationDetail(ConversationRead):
    messages: list[MessageRead] | None = Field(
        None, description="The newest messages in seq order, with include=messages."
    )
    events: list[EventRead] | None = Field(None, description="With include=events.")
