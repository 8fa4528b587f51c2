"""The inbox, conversation and contact pages on the demo data; drafts, replies, status, and
message content that holds HTML or script."""

from __future__ import annotations

import re
import uuid

from threadline.domain.enums import SuggestionStatus
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import Database, conversations, messages, suggestions
from threadline.web import demo

from .conftest import Browser

SCRIPT = '<script>window.pwned = 1</script><img src=x onerror="window.pwned=2">'


def _conversation_ids(html: str) -> list[str]:
    return re.findall(r'href="/c/([0-9a-f-]{36})"', html)


def test_empty_inbox_offers_demo_data_which_loads_once(admin: Browser, db: Database) -> None:
    page = admin.get("/inbox").text
    assert "No conversations yet" in page and 'id="load-demo"' in page
    assert admin.post("/demo", follow_redirects=False).status_code == 303
    page = admin.get("/inbox").text
    ids = _conversation_ids(page)
    assert len(ids) == len(demo.SCRIPTS)
    for label in ("SMS", "WhatsApp", "Email", "Yelp", "Voice", "Web chat"):
        assert f">{label}<" in page
    admin.post("/demo")
    assert len(_conversation_ids(admin.get("/inbox").text)) == len(demo.SCRIPTS)


def demo_pages(admin: Browser) -> list[str]:
    """Every dashboard page on the demo data (bench/dashboard.py times the same list)."""
    ids = _conversation_ids(admin.get("/inbox").text)
    settings_page = admin.get("/settings").text
    agent = re.search(r'href="(/settings/agents/[0-9a-f-]{36})"', settings_page)
    contact = re.search(r'href="(/contacts/[0-9a-f-]{36})"', admin.get(f"/c/{ids[0]}").text)
    assert agent and contact
    return [
        "/inbox",
        "/inbox?status=needs_reply",
        *(f"/c/{i}" for i in ids),
        contact.group(1),
        "/analytics",
        "/settings",
        "/settings/inboxes/new?provider=twilio",
        agent.group(1),
        "/search?q=invoice",
        "/search?q=thanks+OR+quote&mode=keyword",
    ]


def test_every_demo_page_renders(admin: Browser) -> None:
    """Every page answers a whole HTML page. How fast is measured in bench/dashboard.py."""
    admin.post("/demo")
    pages = demo_pages(admin)
    assert len(pages) == len(demo.SCRIPTS) + 9
    for url in pages:
        r = admin.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("text/html"), url
        assert r.text.rstrip().endswith("</html>"), url


def test_filters_narrow_the_inbox(admin: Browser) -> None:
    admin.post("/demo")
    escalated = _conversation_ids(admin.get("/inbox?status=escalated").text)
    assert len(escalated) == 2
    email = _conversation_ids(admin.get("/inbox?channel=email").text)
    assert len(email) == 1
    assert admin.get("/inbox?status=bogus&inbox=not-a-uuid").status_code == 200


def test_thread_shows_channels_their_way(admin: Browser) -> None:
    admin.post("/demo")
    page = admin.get("/inbox").text
    pages = [admin.get(f"/c/{i}").text for i in _conversation_ids(page)]
    everything = "\n".join(pages)
    assert "Show quoted text" in everything  # email history folded
    assert "invoice-1043.pdf" in everything  # attachments
    assert "lookup_order" in everything and "out_for_delivery" in everything  # tool call + result
    assert "Monday is perfect" in everything and "1:34" in everything  # transcript, duration
    assert "Not delivered: 30003" in everything  # a failed SMS
    assert 'class="tick tick-read"' in everything


def test_script_in_messages_is_shown_as_text(
    admin: Browser, db: Database, settings: Settings
) -> None:
    conv = conversations.create(
        db, admin.tenant_id, {"contact": {"name": SCRIPT}, "channel": "email", "title": SCRIPT}
    )
    Ingest(db, settings).append(
        admin.tenant_id,
        conv.id,
        [
            {"role": "user", "content": SCRIPT, "content_html": f"<p>Hello</p>{SCRIPT}"},
            {"role": "user", "content": SCRIPT},
        ],
    )
    for url in (f"/c/{conv.id}", "/inbox", f"/contacts/{conv.contact_id}"):
        html = admin.get(url).text
        assert "<script>window.pwned" not in html, url
        assert "<img src=x onerror" not in html, url
        assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html, url


def test_approve_edit_and_reject_a_draft(admin: Browser, db: Database, settings: Settings) -> None:
    conv = conversations.create(db, admin.tenant_id, {"contact": {"name": "Ada"}})
    ingest = Ingest(db, settings)

    def draft(text: str) -> uuid.UUID:
        [m] = ingest.append(admin.tenant_id, conv.id, [{"role": "user", "content": text}]).messages
        row = suggestions.create_pending(
            db,
            admin.tenant_id,
            {
                "conversation_id": conv.id,
                "in_reply_to_message_id": m["id"],
                "content": f"re: {text}",
            },
        )
        assert f"re: {text}" in admin.get(f"/c/{conv.id}").text
        return row.id

    first = draft("one")
    admin.post(f"/suggestions/{first}/approve", {"content": "re: one"})
    assert suggestions.get(db, admin.tenant_id, first).status == SuggestionStatus.APPROVED
    second = draft("two")
    admin.post(f"/suggestions/{second}/approve", {"content": "my own words"})
    assert suggestions.get(db, admin.tenant_id, second).status == SuggestionStatus.EDITED
    third = draft("three")
    admin.post(f"/suggestions/{third}/reject", {"feedback": "too pushy"})
    decided = suggestions.get(db, admin.tenant_id, third)
    assert decided.status == SuggestionStatus.REJECTED and decided.feedback == "too pushy"
    rows, _ = messages.list_range(db, admin.tenant_id, conv.id)
    assert [m["content"] for m in rows if m["role"] == "assistant"] == ["re: one", "my own words"]
    # Deciding again changes nothing and says why.
    r = admin.post(f"/suggestions/{first}/approve", follow_redirects=False)
    assert "error=" in r.headers["location"]
    assert len(messages.list_range(db, admin.tenant_id, conv.id)[0]) == 5


def test_reply_status_escalate_and_hand_back(admin: Browser, db: Database) -> None:
    conv = conversations.create(db, admin.tenant_id, {"contact": {"name": "Ada"}})
    admin.post(f"/c/{conv.id}/reply", {"content": "Hello from a person"})
    rows, _ = messages.list_range(db, admin.tenant_id, conv.id)
    assert rows[-1]["content"] == "Hello from a person" and rows[-1]["sender_type"] == "human"
    admin.post(f"/c/{conv.id}/escalate")
    assert conversations.get(db, admin.tenant_id, conv.id).status == "escalated"
    assert 'id="handback"' in admin.get(f"/c/{conv.id}").text
    admin.post(f"/c/{conv.id}/handback")
    assert conversations.get(db, admin.tenant_id, conv.id).status == "active"
    admin.post(f"/c/{conv.id}/status", {"status": "archived"})
    r = admin.post(f"/c/{conv.id}/status", {"status": "waiting"}, follow_redirects=False)
    assert "error=" in r.headers["location"]  # archived only reopens to active
    assert conversations.get(db, admin.tenant_id, conv.id).status == "archived"


def test_contact_page_shows_one_timeline_across_channels(
    admin: Browser, db: Database, settings: Settings
) -> None:
    ingest = Ingest(db, settings)
    sms = conversations.create(
        db, admin.tenant_id, {"contact": {"name": "Ada", "phone": "+14155550100"}, "channel": "sms"}
    )
    mail = conversations.create(
        db, admin.tenant_id, {"contact_id": sms.contact_id, "channel": "email", "title": "Hi"}
    )
    ingest.append(admin.tenant_id, sms.id, [{"role": "user", "content": "by text"}])
    ingest.append(admin.tenant_id, mail.id, [{"role": "user", "content": "by mail"}])
    page = admin.get(f"/contacts/{sms.contact_id}").text
    assert page.index("by text") < page.index("by mail")
    assert "+14155550100" in page


def test_analytics_on_the_demo_data(admin: Browser) -> None:
    assert "No model calls yet" in admin.get("/analytics").text
    admin.post("/demo")
    page = admin.get("/analytics").text
    assert "<td>Ava</td>" in page  # tokens and cost by agent
    assert 'id="p50"' in page  # first-response percentiles
    data = re.search(r'id="analytics-data">(.*?)</script>', page, re.S)
    assert data and '"sms"' in data.group(1) and '"email"' in data.group(1)


def test_settings_show_webhook_urls_and_only_admins_change_them(
    admin: Browser, browser_as, db: Database
) -> None:  # type: ignore[no-untyped-def]
    from threadline.domain.enums import UserRole
    from threadline.store import tenants

    admin.post("/demo")
    page = admin.get("/settings").text
    assert "/webhooks/twilio/" in page and "/inbound" in page
    r = admin.post("/settings/keys", {"name": "zapier"})
    assert "New API key, shown only now" in r.text
    token = re.search(r"<code>(tl_[A-Za-z0-9_-]{43})</code>", r.text)
    assert token and tenants.authenticate(db, token.group(1)).tenant_id == admin.tenant_id
    agent = browser_as(UserRole.AGENT)
    assert agent.get("/settings").status_code == 200
    assert agent.post("/settings/keys", {"name": "nope"}).status_code == 403
    r = agent.post("/settings/users", {"email": "x@example.com", "password": "longenough"})
    assert r.status_code == 403
