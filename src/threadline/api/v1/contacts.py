from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from threadline.api.deps import AuthDep, DatabaseDep
from threadline.api.schemas.common import Page
from threadline.api.schemas.contacts import ContactCreate, ContactRead, ContactUpdate
from threadline.api.v1.params import Cursor, Limit
from threadline.store import contacts

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post("", status_code=201, response_model=ContactRead, responses={409: {}})
def create_contact(body: ContactCreate, db: DatabaseDep, auth: AuthDep) -> ContactRead:
    """Create a contact. A phone or email another contact already has answers 409."""
    caller = auth.caller()
    contact = contacts.create(db, caller.tenant_id, body.model_dump())
    return ContactRead.model_validate(contact)


@router.get("", response_model=Page[ContactRead])
def list_contacts(
    db: DatabaseDep, auth: AuthDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[ContactRead]:
    """Contacts, newest first."""
    caller = auth.caller()
    page = contacts.list_page(db, caller.tenant_id, limit=limit, cursor=cursor)
    return Page(
        data=[ContactRead.model_validate(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.get("/{contact_id}", response_model=ContactRead)
def get_contact(contact_id: uuid.UUID, db: DatabaseDep, auth: AuthDep) -> ContactRead:
    caller = auth.caller()
    return ContactRead.model_validate(contacts.get(db, caller.tenant_id, contact_id))


@router.patch("/{contact_id}", response_model=ContactRead, responses={409: {}})
def update_contact(
    contact_id: uuid.UUID, body: ContactUpdate, db: DatabaseDep, auth: AuthDep
) -> ContactRead:
    caller = auth.caller()
    contact = contacts.update(db, caller.tenant_id, contact_id, body.model_dump(exclude_unset=True))
    return ContactRead.model_validate(contact)


@router.delete("/{contact_id}", status_code=204)
def delete_contact(contact_id: uuid.UUID, db: DatabaseDep, auth: AuthDep) -> Response:
    """Delete a contact and everything of theirs: identities, conversations, messages."""
    caller = auth.caller()
    contacts.delete(db, caller.tenant_id, contact_id)
    return Response(status_code=204)
