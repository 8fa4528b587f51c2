"""Outgoing webhooks: endpoints and their delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyUrl,
    Field,
    StringConstraints,
    UrlConstraints,
    field_validator,
)

from threadline.schemas.common import Input, Output, PageQuery

EventType = Literal[
    "message.created",
    "message.status_updated",
    "conversation.status_changed",
    "conversation.escalated",
    "suggestion.created",
    "suggestion.decided",
]


def _fits(url: AnyUrl) -> AnyUrl:
    # The limit holds for the URL as stored: normalising can lengthen it (a trailing slash,
    # an encoded host).
    if len(str(url)) > 2048:
        raise ValueError("the URL is longer than 2048 characters")
    return url


#: An absolute http(s) URL with a host; anything else (ftp:, javascript:, a bare path) is 422.
EndpointUrl = Annotated[
    AnyUrl,
    UrlConstraints(max_length=2048, allowed_schemes=["http", "https"], host_required=True),
    AfterValidator(_fits),
]


class WebhookEndpointCreate(Input):
    url: EndpointUrl = Field(description="Where the events are POSTed: http or https.")
    events: list[EventType] | None = Field(
        None,
        min_length=1,
        description="The event types to send; omitted or null for every type.",
    )
    description: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))


class WebhookEndpointRead(Output):
    id: uuid.UUID
    url: str
    events: list[EventType] | None = Field(
        validation_alias="event_types", description="null: every type."
    )
    description: str | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(
        description="The signing secret (whsec_...), shown only now: verify each request's "
        "webhook-signature with it."
    )


class WebhookEndpointList(Output):
    data: list[WebhookEndpointRead]


class WebhookDeliveryRead(Output):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: EventType
    conversation_id: uuid.UUID | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None = Field(description="The HTTP status of the last attempt.")
    error: str | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookDeliveryList(Output):
    data: list[WebhookDeliveryRead]
    next_cursor: str | None = None


class WebhookDeliveryQuery(PageQuery):
    """Newest event first."""
