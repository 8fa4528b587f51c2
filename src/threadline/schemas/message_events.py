"""A message's delivery status events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from threadline.domain.enums import DeliveryStatus
from threadline.schemas.common import Output


class MessageEventRead(Output):
    """One step of a message's delivery: a send attempt and its outcome, or a provider's
    status callback. ``status`` is null for events that change no status (a click)."""

    id: uuid.UUID
    message_id: uuid.UUID
    status: DeliveryStatus | None
    provider_status: str | None
    error_code: str | None
    error: str | None
    external_message_id: str | None
    provider_data: dict[str, Any] | None
    occurred_at: datetime
    created_at: datetime


class MessageEventList(Output):
    data: list[MessageEventRead]
