from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.common import Page
from threadline.schemas.inboxes import (
    InboxCreate,
    InboxCreated,
    InboxListQuery,
    InboxRead,
    InboxUpdate,
)
from threadline.store import inboxes

router = APIRouter(prefix="/inboxes", tags=["inboxes"])


@router.post("", status_code=201, response_model=InboxCreated, responses={409: {}})
def create_inbox(body: InboxCreate, ctx: Ctx, _: NoQueryParams) -> InboxCreated:
    """Create an inbox. The answer's `webhooks` are the URLs to paste into the provider's
    console; `generated_credentials` (webhook tokens Threadline made) are shown only now.
    Missing required credentials answer 422 naming them."""
    caller = ctx.caller()
    view = inboxes.create(ctx.db, ctx.settings, caller.tenant_id, body.model_dump())
    return InboxCreated.model_validate(view)


@router.get("", response_model=Page[InboxRead])
def list_inboxes(ctx: Ctx, query: Annotated[InboxListQuery, Query()]) -> Page[InboxRead]:
    """Inboxes, newest first."""
    caller = ctx.caller()
    page = inboxes.list_page(
        ctx.db, ctx.settings, caller.tenant_id, limit=query.limit, cursor=query.cursor
    )
    return Page(
        data=[InboxRead.model_validate(v) for v in page.items], next_cursor=page.next_cursor
    )


@router.get("/{inbox_id}", response_model=InboxRead)
def get_inbox(inbox_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> InboxRead:
    caller = ctx.caller()
    return InboxRead.model_validate(inboxes.get(ctx.db, ctx.settings, caller.tenant_id, inbox_id))


@router.patch("/{inbox_id}", response_model=InboxRead, responses={409: {}})
def update_inbox(inbox_id: uuid.UUID, body: InboxUpdate, ctx: Ctx, _: NoQueryParams) -> InboxRead:
    """Change an inbox; `credentials` are merged (null removes one)."""
    caller = ctx.caller()
    view = inboxes.update(
        ctx.db, ctx.settings, caller.tenant_id, inbox_id, body.model_dump(exclude_unset=True)
    )
    return InboxRead.model_validate(view)


@router.delete("/{inbox_id}", status_code=204)
def delete_inbox(inbox_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> Response:
    """Delete an inbox; its conversations and messages stay."""
    caller = ctx.caller()
    inboxes.delete(ctx.db, caller.tenant_id, inbox_id)
    return Response(status_code=204)
