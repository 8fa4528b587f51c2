"""A contact's export and the answer to an erase."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field

from threadline.schemas.common import Output


class ContactExport(Output):
    """Everything stored about one person, as JSON: the contact, identities, and every
    conversation of theirs with its messages (delivery, model and moderation fields, and
    each message's `status_events`), `events`, `suggestions`, `actions`, `summaries` and
    `model_calls`; `events` at the top are the tenant log's entries about them."""

    exported_at: str
    contact: dict[str, Any]
    identities: list[dict[str, Any]]
    conversations: list[dict[str, Any]]
    events: list[dict[str, Any]]


class ContactErased(Output):
    contact_id: uuid.UUID
    conversations: int = Field(description="Conversations whose titles and summaries went.")
    messages: int = Field(description="Messages whose bodies were removed.")
    embeddings: int = Field(description="Vectors deleted.")
    identities: int = Field(description="Identities deleted.")
