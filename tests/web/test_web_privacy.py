"""A contact's data from the contact page: the export as a download, and the erase behind
its confirmation (the contact's name or ERASE, a CSRF token, and an admin or agent)."""

from __future__ import annotations

import json
import uuid

from threadline.domain.enums import UserRole
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import Database, contacts, conversations, messages

from .conftest import Browser


def _contact_with_messages(db: Database, settings: Settings, tenant_id: uuid.UUID) -> uuid.UUID:
    conv = conversations.create(
        db,
        tenant_id,
        {"contact": {"name": "Ada Lovelace", "phone": "+14155550101"}, "channel": "sms"},
    )
    Ingest(db, settings).append(
        tenant_id,
        conv.id,
        [
            {"role": "user", "content": "my address is 12 Analytical Row"},
            {"role": "assistant", "content": "Thanks Ada, noted."},
        ],
    )
    assert conv.contact_id is not None
    return conv.contact_id


def test_export_downloads_everything_about_the_contact(
    admin: Browser, db: Database, settings: Settings
) -> None:
    contact_id = _contact_with_messages(db, settings, admin.tenant_id)
    page = admin.get(f"/contacts/{contact_id}").text
    assert f'href="/contacts/{contact_id}/export"' in page
    r = admin.get(f"/contacts/{contact_id}/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == f'attachment; filename="contact-{contact_id}.json"'
    data = json.loads(r.content)
    assert data["contact"]["name"] == "Ada Lovelace"
    [conv] = data["conversations"]
    assert [m["content"] for m in conv["messages"]] == [
        "my address is 12 Analytical Row",
        "Thanks Ada, noted.",
    ]
    assert admin.get(f"/contacts/{uuid.uuid4()}/export").status_code == 404


def test_erase_needs_the_name_or_the_word(admin: Browser, db: Database, settings: Settings) -> None:
    contact_id = _contact_with_messages(db, settings, admin.tenant_id)
    r = admin.post(f"/contacts/{contact_id}/erase", {"confirm": "Ada"}, follow_redirects=False)
    assert r.status_code == 303 and "Nothing%20was%20erased" in r.headers["location"]
    assert contacts.get(db, admin.tenant_id, contact_id).name == "Ada Lovelace"
    r = admin.post(f"/contacts/{contact_id}/erase", {"confirm": "  ada   LOVELACE "})
    assert r.status_code == 200
    assert "Erased the text of 2 messages in 1 conversation" in r.text
    assert "Analytical Row" not in r.text and "Ada Lovelace" not in r.text
    contact = contacts.get(db, admin.tenant_id, contact_id)
    assert (contact.name, contact.phone) == (None, None)
    rows = _their_messages(db, admin.tenant_id, contact_id)
    assert len(rows) == 2 and all(m["content"] is None for m in rows)
    # A contact without a name: only the word does it.
    r = admin.post(f"/contacts/{contact_id}/erase", {"confirm": "ERASE"}, follow_redirects=False)
    assert "erased=" in r.headers["location"]


def _their_messages(db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> list[dict]:  # type: ignore[type-arg]
    from threadline.web import queries

    rows, _ = queries.inbox_rows(db, tenant_id, queries.InboxFilters(contact_id=contact_id))
    out = []
    for row in rows:
        out += messages.list_range(db, tenant_id, row.id)[0]
    return out


def test_viewers_and_forms_without_a_token_cannot_erase(
    admin: Browser, browser_as, db: Database, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    contact_id = _contact_with_messages(db, settings, admin.tenant_id)
    viewer = browser_as(UserRole.VIEWER)
    assert 'id="erase-confirm"' not in viewer.get(f"/contacts/{contact_id}").text
    assert viewer.get(f"/contacts/{contact_id}/export").status_code == 200
    r = viewer.post(f"/contacts/{contact_id}/erase", {"confirm": "ERASE"})
    assert r.status_code == 403
    r = admin.client.post(f"/contacts/{contact_id}/erase", data={"confirm": "ERASE"})
    assert r.status_code == 403
    agent = browser_as(UserRole.AGENT)
    assert 'id="erase-confirm"' in agent.get(f"/contacts/{contact_id}").text
    assert contacts.get(db, admin.tenant_id, contact_id).name == "Ada Lovelace"
    r = agent.post(f"/contacts/{contact_id}/erase", {"confirm": "ERASE"}, follow_redirects=False)
    assert r.status_code == 303 and "erased=" in r.headers["location"]
    assert contacts.get(db, admin.tenant_id, contact_id).name is None
