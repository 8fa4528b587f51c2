"""A message's delivery status events: ``GET /v1/messages/{id}/events``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.message_events import MessageEventList
from threadline.store import deliveries

router = APIRouter(prefix="/messages", tags=["messages"])


@router.get("/{message_id}/events", response_model=MessageEventList)
def list_message_events(message_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> MessageEventList:
    """The message's delivery events in the order they happened: each send attempt
    (`queued` with the error before a retry, `sent`, `failed`) and each status callback of
    the provider (`delivered`, `read`, `failed` with the provider's error code and text)."""
    caller = ctx.caller()
    rows = deliveries.events_for(ctx.db, caller.tenant_id, message_id)
    return MessageEventList.model_validate({"data": rows})
