"""A person's data: everything about them (GET .../export) and its erasure (POST .../erase)."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from fastapi import APIRouter

from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.privacy import ContactErased, ContactExport
from threadline.store import privacy
from threadline.store.attachments import Files

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.get("/{contact_id}/export", response_model=ContactExport)
def export_contact(contact_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> ContactExport:
    """Everything stored about the contact, for a data-subject access request."""
    caller = ctx.caller()
    return ContactExport.model_validate(
        privacy.export_contact(ctx.db, caller.tenant_id, contact_id)
    )


@router.post("/{contact_id}/erase", response_model=ContactErased)
def erase_contact(contact_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> ContactErased:
    """Erase the contact's personal data: message bodies (content, HTML, tool-call arguments,
    attachments, channel data, metadata), vectors and keyword-index entries, the drafts,
    prompts and summaries that quoted them, name, phone, email, attributes and identities.
    Conversations and bodiless messages stay, so counts and analytics remain true. A
    `contact.erased` event records it without personal data."""
    caller = ctx.caller()
    files = Files.from_settings(ctx.settings)
    erased = privacy.erase_contact(ctx.db, caller.tenant_id, contact_id, files=files)
    return ContactErased.model_validate(asdict(erased))
