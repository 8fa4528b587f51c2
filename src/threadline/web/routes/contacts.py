"""A contact: one timeline across every channel, their identities and attributes."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from threadline.domain.errors import NotFound
from threadline.store import contacts
from threadline.web import auth, queries
from threadline.web.routes.conversation import not_found
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_page(request: Request, contact_id: str, user: auth.Reader) -> Response:
    db = request.app.state.db
    try:
        cid = uuid.UUID(contact_id)
        contact = contacts.get(db, user.tenant_id, cid)
    except (ValueError, NotFound):
        return not_found(request, user, "contact")
    rows, _ = queries.inbox_rows(
        db, user.tenant_id, queries.InboxFilters(contact_id=cid), limit=100
    )
    context = {
        "user": user,
        "contact": contact,
        "identities": queries.identities(db, user.tenant_id, cid),
        "conversations": rows,
        "timeline": queries.contact_timeline(db, user.tenant_id, cid),
        "page": "inbox",
    }
    return templates.TemplateResponse(request, "contact.html", context)
