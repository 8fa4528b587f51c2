"""Search in the dashboard: hits with the matched words marked, linking to the message in
its conversation; message text stays text."""

from __future__ import annotations

from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import Database, conversations

from .conftest import Browser


def test_search_finds_a_demo_message_and_links_to_it(admin: Browser) -> None:
    assert "Find any message" in admin.get("/search").text
    admin.post("/demo")
    page = admin.get("/search?q=invoice").text
    assert "<mark>invoice</mark>" in page
    assert "Priya Natarajan" in page and 'href="/c/' in page and "#m" in page
    assert "Matching exact words" in page  # embeddings are off in the tests
    sms_only = admin.get("/search?q=invoice&channel=sms").text
    assert "Priya Natarajan" not in sms_only
    assert "Nothing matches" in admin.get("/search?q=zzzqqqxxx").text


def test_script_in_a_hit_is_text(admin: Browser, db: Database, settings: Settings) -> None:
    conv = conversations.create(db, admin.tenant_id, {"contact": {"name": "Mallory"}})
    Ingest(db, settings).append(
        admin.tenant_id,
        conv.id,
        [{"role": "user", "content": "findme <script>window.pwned=1</script>"}],
    )
    page = admin.get("/search?q=findme&mode=keyword").text
    assert "<mark>findme</mark>" in page
    assert "<script>window.pwned" not in page and "&lt;script&gt;" in page
