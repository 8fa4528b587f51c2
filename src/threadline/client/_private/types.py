"""Argument types shared by the clients."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Required, TypeAlias, TypedDict

#: An id, as the API gives it (a string) or as a UUID.
ID: TypeAlias = str | uuid.UUID

SearchMode: TypeAlias = Literal["keyword", "semantic", "hybrid"]


class MessageInput(TypedDict, total=False):
    """One message to append (the API's message fields; ``role`` is the one required)."""

    role: Required[str]
    content: str | None
    tool_calls: Sequence[Mapping[str, Any]] | None
    tool_call_id: str | None
    name: str | None
    sender_type: str
    direction: str
    message_type: str
    external_message_id: str
    metadata: Mapping[str, Any]
    occurred_at: datetime | str
