"""Contacts: one person, whatever channel they write from.

Phones are normalised to E.164 and emails to lower case. Each phone and email is also an
identity ``(channel, address)``, unique per tenant, so an inbound message resolves to one
contact and two contacts cannot claim the same address.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from threadline.domain.enums import Channel
from threadline.domain.errors import AlreadyExists, InvalidInput
from threadline.store import pagination
from threadline.store.database import Database
from threadline.store.models import Contact, ContactIdentity, Conversation, Message
from threadline.store.owned import owned
from threadline.store.types import utcnow


def normalize_phone(phone: str) -> str:
    """E.164 form of a phone number written in international form (``+1 415 555 0100``)."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(
            "phone must be an international number starting with + and a country code",
            phone=phone,
        ) from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput("phone is not a possible phone number", phone=phone)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _identities(contact: Contact) -> list[tuple[Channel, str]]:
    out = []
    if contact.phone:
        out.append((Channel.SMS, contact.phone))
    if contact.email:
        out.append((Channel.EMAIL, contact.email))
    return out


def _sync_identities(
    s: Session, contact: Contact, old: list[tuple[Channel, str]] | None = None
) -> None:
    """Give the contact the identities of its phone and email; ``old`` are those of the
    values they replace, removed. Other identities (learnt from channels, or moved here
    by a merge) stay."""
    current = _identities(contact)
    gone = [key for key in old or [] if key not in current]
    if gone:
        s.execute(
            sa.delete(ContactIdentity).where(
                ContactIdentity.tenant_id == contact.tenant_id,
                ContactIdentity.contact_id == contact.id,
                sa.tuple_(ContactIdentity.channel, ContactIdentity.address).in_(
                    [(c.value, a) for c, a in gone]
                ),
            )
        )
    for channel, address in current:
        clash = s.scalar(
            sa.select(ContactIdentity.contact_id).where(
                ContactIdentity.tenant_id == contact.tenant_id,
                ContactIdentity.channel == channel,
                ContactIdentity.address == address,
            )
        )
        if clash == contact.id:
            continue
        if clash is not None:
            what = "phone" if channel == Channel.SMS else "email"
            raise AlreadyExists(
                f"another contact already has this {what}",
                contact_id=str(clash),
                address=address,
            )
        s.add(
            ContactIdentity(
                tenant_id=contact.tenant_id, contact_id=contact.id, channel=channel, address=address
            )
        )


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if out.get("phone"):
        out["phone"] = normalize_phone(out["phone"])
    if out.get("email"):
        out["email"] = normalize_email(out["email"])
    return out


def create_in(s: Session, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Contact:
    """Create a contact inside an open write session."""
    fields = _clean(fields)
    contact = Contact(
        tenant_id=tenant_id,
        name=fields.get("name"),
        phone=fields.get("phone"),
        email=fields.get("email"),
        attributes=fields.get("attributes") or {},
    )
    s.add(contact)
    s.flush()
    _sync_identities(s, contact)
    s.flush()
    return contact


def create(db: Database, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Contact:
    try:
        with db.write() as s:
            return create_in(s, tenant_id, fields)
    except IntegrityError as exc:  # a concurrent writer took the address first
        raise AlreadyExists("another contact already has this phone or email") from exc


def find_in(
    s: Session, tenant_id: uuid.UUID, phone: str | None, email: str | None
) -> Contact | None:
    """The contact owning this phone, else this email (already normalised)."""
    for channel, address in ((Channel.SMS, phone), (Channel.EMAIL, email)):
        if address:
            contact = s.scalar(
                sa.select(Contact)
                .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
                .where(
                    ContactIdentity.tenant_id == tenant_id,
                    ContactIdentity.channel == channel,
                    ContactIdentity.address == address,
                )
            )
            if contact is not None:
                return contact
    return None


def get(db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    with db.read() as s:
        return owned(s, Contact, tenant_id, contact_id, name="contact")


def list_page(
    db: Database, tenant_id: uuid.UUID, *, limit: int, cursor: str | None = None
) -> pagination.Page[Contact]:
    """Contacts, newest first."""
    q = sa.select(Contact).where(Contact.tenant_id == tenant_id)
    with db.read() as s:
        return pagination.newest_first(
            s, q, Contact.created_at, Contact.id, limit=limit, cursor=cursor
        )


def update(
    db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID, fields: dict[str, Any]
) -> Contact:
    fields = _clean(fields)
    try:
        with db.write() as s:
            contact = owned(s, Contact, tenant_id, contact_id, name="contact")
            old = _identities(contact)
            for name in ("name", "phone", "email", "attributes"):
                if name in fields:
                    value = fields[name]
                    if name == "attributes" and value is None:
                        value = {}
                    setattr(contact, name, value)
            contact.updated_at = utcnow()
            s.flush()
            if "phone" in fields or "email" in fields:
                _sync_identities(s, contact, old)
            return contact
    except IntegrityError as exc:
        raise AlreadyExists("another contact already has this phone or email") from exc


#: Messages deleted per write when a contact goes: each batch is a short write of its own,
#: so deleting a long history never holds the write lock for long.
DELETE_BATCH = 500


def delete(
    db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID, *, batch: int = DELETE_BATCH
) -> None:
    """Delete a contact with their identities, conversations and messages.

    The messages go first, ``batch`` at a time, newest first, each batch its own write; other
    writers (other tenants' webhooks above all) take turns in between. Then the contact goes
    in one write, and ON DELETE CASCADE removes what is left. Interrupted half-way, the
    contact is still there with part of their history: deleting again finishes the job.
    """
    with db.read() as s:
        owned(s, Contact, tenant_id, contact_id, name="contact")
        conversation_ids = list(
            s.scalars(
                sa.select(Conversation.id).where(
                    Conversation.tenant_id == tenant_id, Conversation.contact_id == contact_id
                )
            )
        )
    messages = cast(sa.Table, Message.__table__)
    for conversation_id in conversation_ids:
        in_conversation = sa.and_(
            messages.c.tenant_id == tenant_id, messages.c.conversation_id == conversation_id
        )
        db.delete_in_batches(messages, in_conversation, messages.c.seq.desc(), batch)
    with db.write() as s:
        s.delete(owned(s, Contact, tenant_id, contact_id, name="contact"))


def merge(db: Database, tenant_id: uuid.UUID, into_id: uuid.UUID, from_id: uuid.UUID) -> Contact:
    """Merge contact ``from_id`` into ``into_id`` (the survivor), in one transaction.

    The loser's conversations and identities move to the survivor; attributes are merged
    with the survivor's values winning on conflicts; a name, phone or email the survivor
    lacks is taken from the loser. Then the loser is deleted: nothing it had is lost.
    """
    if into_id == from_id:
        raise InvalidInput("a contact cannot be merged into itself", contact_id=str(into_id))
    with db.write() as s:
        survivor = owned(s, Contact, tenant_id, into_id, name="contact", lock=True)
        loser = owned(s, Contact, tenant_id, from_id, name="contact", lock=True)
        for model in (Conversation, ContactIdentity):
            s.execute(
                sa.update(model)
                .where(model.tenant_id == tenant_id, model.contact_id == from_id)
                .values(contact_id=into_id)
                .execution_options(synchronize_session=False)
            )
        survivor.attributes = {**(loser.attributes or {}), **(survivor.attributes or {})}
        for name in ("name", "phone", "email"):
            if getattr(survivor, name) is None and getattr(loser, name) is not None:
                setattr(survivor, name, getattr(loser, name))
        survivor.updated_at = utcnow()
        s.flush()
        s.delete(loser)
        s.flush()
        return survivor
