from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.common import Page
from threadline.schemas.conversations import (
    ConversationCreate,
    ConversationDetail,
    ConversationDetailQuery,
    ConversationListQuery,
    ConversationRead,
    ConversationUpdate,
    EventListQuery,
    EventRead,
)
from threadline.schemas.messages import MessageRead
from threadline.store import conversations, messages

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.post("", status_code=201, response_model=ConversationRead)
def create_conversation(body: ConversationCreate, ctx: Ctx, _: NoQueryParams) -> ConversationRead:
    """Start a conversation with an existing contact (`contact_id`) or one described by
    `contact` (matched by phone, then email, else created)."""
    caller = ctx.caller()
    fields = body.model_dump(exclude_unset=True)
    if body.contact is not None:
        fields["contact"] = body.contact.model_dump()
    conv = conversations.create(ctx.db, caller.tenant_id, fields)
    return ConversationRead.model_validate(conv)


@router.get("", response_model=Page[ConversationRead])
def list_conversations(
    ctx: Ctx, query: Annotated[ConversationListQuery, Query()]
) -> Page[ConversationRead]:
    """Conversations with the most recent activity first."""
    caller = ctx.caller()
    page = conversations.list_page(ctx.db, caller.tenant_id, **query.model_dump())
    return Page(
        data=[ConversationRead.model_validate(c) for c in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{conversation_id}", response_model=ConversationDetail)
def get_conversation(
    conversation_id: uuid.UUID,
    ctx: Ctx,
    query: Annotated[ConversationDetailQuery, Query()],
) -> ConversationDetail:
    """A conversation; `include=messages` adds its newest 50 messages, `include=events` its
    first 100 events (the first page of its events list)."""
    caller = ctx.caller()
    conv = conversations.get(ctx.db, caller.tenant_id, conversation_id)
    detail = ConversationDetail.model_validate(conv)
    if "messages" in query.include:
        rows = messages.last(ctx.db, caller.tenant_id, conversation_id, 50)
        detail.messages = [MessageRead.model_validate(r) for r in rows]
    if "events" in query.include:
        first = EventListQuery()
        page = conversations.events_page(
            ctx.db, caller.tenant_id, conversation_id, limit=first.limit
        )
        detail.events = [EventRead.model_validate(e) for e in page.items]
    return detail


@router.patch("/{conversation_id}", response_model=ConversationRead, responses={409: {}})
def update_conversation(
    conversation_id: uuid.UUID, body: ConversationUpdate, ctx: Ctx, _: NoQueryParams
) -> ConversationRead:
    """Change status, title, assignee or metadata. A status change the state machine
    forbids (for example archived -> waiting) answers 409."""
    caller = ctx.caller()
    conv = conversations.update(
        ctx.db, caller.tenant_id, conversation_id, body.model_dump(exclude_unset=True)
    )
    return ConversationRead.model_validate(conv)


@router.get("/{conversation_id}/events", response_model=Page[EventRead])
def list_events(
    conversation_id: uuid.UUID, ctx: Ctx, query: Annotated[EventListQuery, Query()]
) -> Page[EventRead]:
    """The conversation's audit trail (created, status changes, assignments) in the order it
    happened; pass `next_cursor` as `cursor` for the next page."""
    caller = ctx.caller()
    page = conversations.events_page(
        ctx.db, caller.tenant_id, conversation_id, limit=query.limit, cursor=query.cursor
    )
    return Page(
        data=[EventRead.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )
