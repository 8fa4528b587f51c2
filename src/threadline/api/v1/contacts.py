from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.common import Page
from threadline.schemas.contacts import (
    ContactCreate,
    ContactListQuery,
    ContactMerge,
    ContactRead,
    ContactUpdate,
)
from threadline.store import contacts, privacy
from threadline.store.attachments import Files

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post("", status_code=201, response_model=ContactRead, responses={409: {}})
def create_contact(body: ContactCreate, ctx: Ctx, _: NoQueryParams) -> ContactRead:
    """Create a contact. A phone or email another contact already has answers 409."""
    caller = ctx.caller()
    contact = contacts.create(ctx.db, caller.tenant_id, body.model_dump())
    return ContactRead.model_validate(contact)


@router.get("", response_model=Page[ContactRead])
def list_contacts(ctx: Ctx, query: Annotated[ContactListQuery, Query()]) -> Page[ContactRead]:
    """Contacts, newest first."""
    caller = ctx.caller()
    page = contacts.list_page(ctx.db, caller.tenant_id, limit=query.limit, cursor=query.cursor)
    return Page(
        data=[ContactRead.model_validate(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.get("/{contact_id}", response_model=ContactRead)
def get_contact(contact_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> ContactRead:
    caller = ctx.caller()
    return ContactRead.model_validate(contacts.get(ctx.db, caller.tenant_id, contact_id))


@router.patch("/{contact_id}", response_model=ContactRead, responses={409: {}})
def update_contact(
    contact_id: uuid.UUID, body: ContactUpdate, ctx: Ctx, _: NoQueryParams
) -> ContactRead:
    caller = ctx.caller()
    contact = contacts.update(
        ctx.db, caller.tenant_id, contact_id, body.model_dump(exclude_unset=True)
    )
    return ContactRead.model_validate(contact)


@router.delete("/{contact_id}", status_code=204)
def delete_contact(contact_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> Response:
    """Delete a contact and everything of theirs: identities, conversations, messages, and
    the attachment files nobody else's messages refer to."""
    caller = ctx.caller()
    files = Files.from_settings(ctx.settings)
    privacy.delete_contact(ctx.db, caller.tenant_id, contact_id, files=files)
    return Response(status_code=204)


@router.post("/{contact_id}/merge", response_model=ContactRead)
def merge_contact(
    contact_id: uuid.UUID, body: ContactMerge, ctx: Ctx, _: NoQueryParams
) -> ContactRead:
    """Merge `from_contact_id` into this contact: its conversations and identities move
    here, attributes are merged (this contact's win), and it is deleted. 422 for itself."""
    caller = ctx.caller()
    contact = contacts.merge(ctx.db, caller.tenant_id, contact_id, body.from_contact_id)
    return ContactRead.model_validate(contact)
