"""A contact: one timeline across every channel, their identities and attributes, and their
data as a download (export) or gone (erase, after typing their name or ERASE)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from threadline.domain.errors import NotFound
from threadline.store import contacts, privacy
from threadline.store.attachments import Files
from threadline.store.models import Contact
from threadline.web import auth, queries
from threadline.web.routes.conversation import not_found
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

#: What a person may always type to confirm an erase (besides the contact's name).
ERASE_WORD = "ERASE"


def _contact(request: Request, user: auth.WebUser, contact_id: str) -> Contact | None:
    try:
        return contacts.get(request.app.state.db, user.tenant_id, uuid.UUID(contact_id))
    except (ValueError, NotFound):
        return None


def display_name(contact: Contact) -> str:
    return contact.name or contact.phone or contact.email or "Unknown contact"


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_page(request: Request, contact_id: str, user: auth.Reader) -> Response:
    db = request.app.state.db
    contact = _contact(request, user, contact_id)
    if contact is None:
        return not_found(request, user, "contact")
    rows, _ = queries.inbox_rows(
        db, user.tenant_id, queries.InboxFilters(contact_id=contact.id), limit=100
    )
    context = {
        "user": user,
        "contact": contact,
        "contact_name": display_name(contact),
        "identities": queries.identities(db, user.tenant_id, contact.id),
        "conversations": rows,
        "timeline": queries.contact_timeline(db, user.tenant_id, contact.id),
        "erase_word": ERASE_WORD,
        "erased": request.query_params.get("erased"),
        "flash": request.query_params.get("error"),
        "page": "inbox",
    }
    return templates.TemplateResponse(request, "contact.html", context)


@router.get("/contacts/{contact_id}/export")
def export(request: Request, contact_id: str, user: auth.Reader) -> Response:
    """Everything stored about the contact (``store.privacy.export_contact``), as a JSON
    file to download: the answer to a data-subject access request."""
    contact = _contact(request, user, contact_id)
    if contact is None:
        return not_found(request, user, "contact")
    data = privacy.export_contact(request.app.state.db, user.tenant_id, contact.id)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="contact-{contact.id}.json"',
            "Cache-Control": "no-store",
        },
    )


def confirmed(contact: Contact, typed: str) -> bool:
    """Whether ``typed`` is the contact's name (any case, spacing trimmed) or ERASE."""
    text = " ".join(typed.split())
    if text == ERASE_WORD:
        return True
    name = " ".join((contact.name or "").split())
    return bool(name) and text.casefold() == name.casefold()


@router.post("/contacts/{contact_id}/erase")
def erase(
    request: Request,
    contact_id: str,
    user: auth.Writer,
    confirm: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Erase the contact's personal data (``store.privacy.erase_contact``) once the person
    has typed the contact's name or ERASE."""
    contact = _contact(request, user, contact_id)
    if contact is None:
        return not_found(request, user, "contact")
    url = f"/contacts/{contact.id}"
    if not confirmed(contact, confirm):
        hint = f"{contact.name} or {ERASE_WORD}" if contact.name else ERASE_WORD
        return RedirectResponse(
            f"{url}?error={quote(f'Nothing was erased: type {hint} to confirm.')}#erase", 303
        )
    files = Files.from_settings(request.app.state.settings)
    done = privacy.erase_contact(request.app.state.db, user.tenant_id, contact.id, files=files)
    return RedirectResponse(f"{url}?erased={quote(_said(done))}", 303)


def _said(done: privacy.Erased) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return (
        f"Erased the text of {n(done.messages, 'message')} in "
        f"{n(done.conversations, 'conversation')}, and the contact's name, phone, email, "
        "attributes and identities."
    )
