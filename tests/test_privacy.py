"""Privacy: a contact's export, their erasure (down to the database files), and retention."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TenantKey, make_tenant
from test_webhooks import PUBLIC, fixture, make_inbox, postmark_post
from threadline.api.app import create_app
from threadline.settings import RetentionRule, Settings
from threadline.store import Database, privacy
from threadline.store import search as search_store
from threadline.store.attachments import Files
from threadline.store.types import utcnow

SECRET = "zanzibarquokka"  # one word: the keyword index would find it
NAME = "Wilhelmina Quorrington"
PHONE = "+14155550177"


def _seed(api: TestClient, name: str = NAME, phone: str = PHONE, word: str = SECRET) -> dict:
    conv = api.post(
        "/v1/conversations", json={"contact": {"name": name, "phone": phone}, "title": word}
    ).json()
    batch = [
        {
            "role": "user",
            "content": f"my code is {word} please",
            "content_html": f"<p>{word}</p>",
            "attachments": [{"url": f"https://files.example/{word}.png", "type": "image"}],
            "channel_data": {"note": word},
            "metadata": {"note": word},
            "external_message_id": f"in-{len(word)}",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": f'{{"code": "{word}"}}'},
                }
            ],
            "model_used": "gpt-test",
            "prompt_used": f"the user said {word}",
            "token_usage": {"prompt_tokens": 12, "completion_tokens": 3},
            "cost_usd": 0.001,
        },
        {"role": "tool", "tool_call_id": "call_1", "content": f"found {word}"},
        {"role": "assistant", "content": f"Thanks, {word} is noted."},
    ]
    r = api.post(f"/v1/conversations/{conv['id']}/messages/batch", json={"messages": batch})
    assert r.status_code == 201, r.text
    conv["messages"] = r.json()["data"]
    return conv


def test_export_holds_everything_about_the_contact(api: TestClient) -> None:
    conv = _seed(api)
    other = _seed(api, "Someone Else", "+14155550199", "otherword")
    r = api.get(f"/v1/contacts/{conv['contact_id']}/export")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contact"]["name"] == NAME
    assert body["contact"]["phone"] == PHONE
    assert [(i["channel"], i["address"]) for i in body["identities"]] == [("sms", PHONE)]
    assert [c["id"] for c in body["conversations"]] == [conv["id"]]
    exported = body["conversations"][0]
    assert [m["seq"] for m in exported["messages"]] == [1, 2, 3, 4]
    call = exported["messages"][1]
    assert call["model_used"] == "gpt-test"
    assert call["prompt_used"] == f"the user said {SECRET}"
    assert call["token_usage"] == {"prompt_tokens": 12, "completion_tokens": 3}
    assert call["tool_calls"][0]["function"]["name"] == "lookup"
    assert exported["messages"][0]["attachments"][0]["type"] == "image"
    assert exported["messages"][0]["status_events"] == []
    assert any(e["type"] == "created" for e in exported["events"])
    assert {e["type"] for e in body["events"]} >= {"message.created"}
    assert all(e["conversation_id"] == conv["id"] for e in body["events"])
    assert other["id"] not in r.text and "otherword" not in r.text
    assert "tenant_id" not in r.text


def test_export_and_erase_of_another_tenants_contact_are_404(
    api: TestClient, app: Any, db: Database
) -> None:
    conv = _seed(api)
    stranger = make_tenant(db)
    with TestClient(app, headers=stranger.headers, raise_server_exceptions=False) as them:
        for r in (
            them.get(f"/v1/contacts/{conv['contact_id']}/export"),
            them.post(f"/v1/contacts/{conv['contact_id']}/erase"),
            them.post(f"/v1/contacts/{uuid.uuid4()}/erase"),
        ):
            assert r.status_code == 404, r.text
            assert r.json()["error"]["code"] == "not_found"
    assert api.get(f"/v1/contacts/{conv['contact_id']}").json()["name"] == NAME
    messages = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
    assert messages[0]["content"] == f"my code is {SECRET} please"
    assert api.post(f"/v1/contacts/{conv['contact_id']}/erase?x=1").status_code == 422


def _files(db_url: str) -> list[Path]:
    path = Path(sa.make_url(db_url).database or "")
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def test_erase_removes_bodies_vectors_and_search_entries(
    api: TestClient, db: Database, db_url: str, tenant: TenantKey
) -> None:
    conv = _seed(api)
    other = _seed(api, "Someone Else", "+14155550199", "keepthisword")
    pending = search_store.pending(db, "test-model", limit=100)
    assert len(pending) == 6  # messages with content, both contacts
    search_store.store_vectors(db, "test-model", [(p, [0.01] * 384) for p in pending])
    assert api.get("/v1/search", params={"q": SECRET, "mode": "keyword"}).json()["data"]

    r = api.post(f"/v1/contacts/{conv['contact_id']}/erase")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "contact_id": conv["contact_id"],
        "conversations": 1,
        "messages": 4,
        "embeddings": 3,
        "identities": 1,
    }

    contact = api.get(f"/v1/contacts/{conv['contact_id']}").json()
    assert (contact["name"], contact["phone"], contact["email"]) == (None, None, None)
    messages = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4]  # the log keeps its shape
    for m in messages:
        for field in ("content", "content_html", "attachments", "channel_data", "metadata"):
            assert m[field] is None, field
        assert m["prompt_used"] is None
    assert messages[1]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    ]
    assert messages[1]["model_used"] == "gpt-test"  # bookkeeping stays
    assert api.get("/v1/search", params={"q": SECRET, "mode": "keyword"}).json()["data"] == []
    kept = api.get("/v1/search", params={"q": "keepthisword", "mode": "keyword"}).json()["data"]
    assert {h["conversation_id"] for h in kept} == {other["id"]}
    # the other contact keeps everything, their vectors too
    with db.connect() as conn:
        vectors = conn.exec_driver_sql("SELECT count(*) FROM embeddings").scalar_one()
    assert vectors == 3
    # the audit event names ids and counts, nothing personal
    events = api.get("/v1/events").json()["data"]
    erased = [e for e in events if e["type"] == "contact.erased"]
    assert len(erased) == 1
    assert erased[0]["data"] == {
        "contact_id": conv["contact_id"],
        "conversations": 1,
        "messages": 4,
    }
    exported = api.get(f"/v1/contacts/{conv['contact_id']}/export").text
    assert SECRET not in exported and "Wilhelmina" not in exported and "0177" not in exported
    # a second erase is harmless
    assert api.post(f"/v1/contacts/{conv['contact_id']}/erase").status_code == 200

    if db.dialect == "sqlite":
        files = _files(db_url)
        assert files
        for path in files:
            data = path.read_bytes()
            for needle in (SECRET, "Wilhelmina", "Quorrington", "4155550177"):
                assert needle.encode() not in data, (path.name, needle)
        assert b"keepthisword" in files[0].read_bytes()  # the check can find what is there
    else:
        with db.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT count(*) FROM messages WHERE content LIKE %(p)s OR "
                "CAST(tool_calls AS text) LIKE %(p)s OR CAST(metadata AS text) LIKE %(p)s",
                {"p": f"%{SECRET}%"},
            ).scalar_one()
        assert rows == 0
    # the phone is free again: another contact can have it
    again = api.post("/v1/contacts", json={"name": "New", "phone": PHONE})
    assert again.status_code == 201, again.text


def _age(db: Database, conversation_id: str, days: float) -> None:
    with db.transaction() as conn:
        conn.execute(
            privacy.conversations_t.update()
            .where(privacy.conversations_t.c.id == uuid.UUID(conversation_id))
            .values(last_activity_at=utcnow() - timedelta(days=days))
        )


def _email(sender: str, message_id: str, *files: tuple[str, bytes]) -> dict[str, Any]:
    """A Postmark inbound email from ``sender`` carrying these attachments."""
    mail: dict[str, Any] = fixture("postmark_inbound.json")
    headers = [h for h in mail["Headers"] if h["Name"] not in ("In-Reply-To", "References")]
    for h in headers:
        if h["Name"] == "Message-ID":
            h["Value"] = f"<{message_id}@mail.example.com>"
    return mail | {
        "From": sender,
        "FromFull": {"Email": sender, "Name": "", "MailboxHash": ""},
        "MessageID": message_id,
        "Headers": headers,
        "Attachments": [
            {"Name": name, "Content": base64.b64encode(data).decode(), "ContentType": "x/y"}
            for name, data in files
        ],
    }


def _keeping_files(settings: Settings, tmp_path: Path) -> tuple[Settings, Files]:
    """Settings that keep attachments under ``tmp_path``, and their file store."""
    settings = settings.model_copy(
        update={"attachments_dir": str(tmp_path / "files"), "public_url": PUBLIC}
    )
    return settings, Files.from_settings(settings)


def _postmark_inbox(api: TestClient, address: str) -> dict[str, Any]:
    return make_inbox(
        api, provider="postmark", address=address, credentials={"server_token": "pm-token"}
    )


def _stored(files: Files, data: bytes) -> Path:
    """Where the file store keeps an attachment with this content."""
    return files.path_of(hashlib.sha256(data).hexdigest())


def test_erase_removes_attachment_files_no_other_message_uses(
    settings: Settings, db: Database, tenant: TenantKey, tmp_path: Path
) -> None:
    settings, files = _keeping_files(settings, tmp_path)
    own, shared = b"Ann's passport scan", b"the shop's price list"
    app = create_app(settings, db, background=())
    with TestClient(app, headers=tenant.headers) as api, TestClient(app) as hooks:
        inbox = _postmark_inbox(api, "support@shop.example")
        ann = _email("ann@example.com", "m-ann", ("passport.png", own), ("prices.pdf", shared))
        bob = _email("bob@example.com", "m-bob", ("prices.pdf", shared))
        for mail in (ann, bob):
            assert postmark_post(hooks, inbox, mail).status_code == 200
        contacts = {c["email"]: c["id"] for c in api.get("/v1/contacts").json()["data"]}
    own_file, shared_file = _stored(files, own), _stored(files, shared)
    assert own_file.read_bytes() == own and shared_file.read_bytes() == shared

    erased = privacy.erase_contact(
        db, tenant.tenant_id, uuid.UUID(contacts["ann@example.com"]), files=files
    )
    assert erased.files == 1
    assert not own_file.exists()  # only Ann's message held it
    assert shared_file.read_bytes() == shared  # Bob's message still refers to it
    again = privacy.erase_contact(
        db, tenant.tenant_id, uuid.UUID(contacts["ann@example.com"]), files=files
    )
    assert again.files == 0
    erased = privacy.erase_contact(
        db, tenant.tenant_id, uuid.UUID(contacts["bob@example.com"]), files=files
    )
    assert erased.files == 1 and not shared_file.exists()
    assert [p for p in files.folder.rglob("*") if p.is_file()] == []


def test_deleting_a_contact_removes_attachment_files_no_other_message_uses(
    settings: Settings, db: Database, tenant: TenantKey, tmp_path: Path
) -> None:
    settings, files = _keeping_files(settings, tmp_path)
    own, shared = b"Cy's signed contract", b"the shop's opening hours"
    app = create_app(settings, db, background=())
    with TestClient(app, headers=tenant.headers) as api, TestClient(app) as hooks:
        inbox = _postmark_inbox(api, "support@shop.example")
        cy = _email("cy@example.com", "m-cy", ("contract.pdf", own), ("hours.txt", shared))
        dee = _email("dee@example.com", "m-dee", ("hours.txt", shared))
        for mail in (cy, dee):
            assert postmark_post(hooks, inbox, mail).status_code == 200
        contacts = {c["email"]: c["id"] for c in api.get("/v1/contacts").json()["data"]}
        own_file, shared_file = _stored(files, own), _stored(files, shared)
        assert own_file.exists() and shared_file.exists()

        assert api.delete(f"/v1/contacts/{contacts['cy@example.com']}").status_code == 204
        assert not own_file.exists()  # only Cy's message held it
        assert shared_file.read_bytes() == shared  # Dee's message still refers to it
        assert api.delete(f"/v1/contacts/{contacts['cy@example.com']}").status_code == 404
        assert api.delete(f"/v1/contacts/{contacts['dee@example.com']}").status_code == 204
    assert [p for p in files.folder.rglob("*") if p.is_file()] == []


def test_retention_archives_or_deletes_idle_conversations_per_tenant(
    api: TestClient, app: Any, db: Database, db_url: str, tenant: TenantKey
) -> None:
    old = _seed(api)
    fresh = _seed(api, "Fresh", "+14155550122", "freshword")
    _age(db, old["id"], 40)
    _age(db, fresh["id"], 5)
    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as them:
        theirs = _seed(them, "Theirs", "+14155550133", "theirword")
        kept = _seed(them, "Kept", "+14155550144", "keptword")
    _age(db, theirs["id"], 40)
    _age(db, kept["id"], 5)

    settings = Settings(
        database_url=db_url,
        environment="test",
        retention_days=30,
        retention_tenants={other.slug: RetentionRule(days=10, action="delete")},
    )
    done = privacy.apply_retention(db, settings, batch=1)
    assert (done.archived, done.deleted) == (1, 1)
    assert api.get(f"/v1/conversations/{old['id']}").json()["status"] == "archived"
    assert api.get(f"/v1/conversations/{fresh['id']}").json()["status"] != "archived"
    events = api.get(f"/v1/conversations/{old['id']}/events").json()["data"]
    assert events[-1]["type"] == "status_changed"
    assert events[-1]["data"]["to"] == "archived"
    assert events[-1]["data"]["reason"] == "retention"
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as them:
        assert them.get(f"/v1/conversations/{theirs['id']}").status_code == 404
        assert them.get(f"/v1/conversations/{kept['id']}").status_code == 200
    with db.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM messages WHERE tenant_id = "
            + ("?" if db.dialect == "sqlite" else "%s"),
            (other.tenant_id.hex if db.dialect == "sqlite" else other.tenant_id,),
        ).scalar_one()
    assert left == 4  # the kept conversation's
    # a second run finds nothing more to do
    assert privacy.apply_retention(db, settings) == privacy.Retained(0, 0)


def test_retention_delete_removes_attachment_files_no_kept_message_uses(
    settings: Settings, db: Database, tenant: TenantKey, tmp_path: Path
) -> None:
    settings, files = _keeping_files(settings, tmp_path)
    own, shared, fresh = b"Ann's passport scan", b"the shop's price list", b"Bob's receipt"
    other = make_tenant(db)
    app = create_app(settings, db, background=())
    mails = [  # Ann's and Bob's to the first tenant, Cy's to the other
        (tenant, "ann@example.com", [("a", own), ("p", shared)]),
        (tenant, "bob@example.com", [("b", fresh)]),
        (other, "cy@example.com", [("c", shared)]),
    ]
    conversations: dict[str, str] = {}
    inboxes: dict[str, dict[str, Any]] = {}
    with TestClient(app) as hooks:
        for who, sender, attached in mails:
            with TestClient(app, headers=who.headers) as api:
                if who.slug not in inboxes:
                    inboxes[who.slug] = _postmark_inbox(api, f"support@{who.slug}.example")
                inbox = inboxes[who.slug]
                mail = _email(sender, f"m-{sender}", *attached)
                assert postmark_post(hooks, inbox, mail).status_code == 200
                newest = api.get("/v1/conversations").json()["data"][0]
                conversations[sender] = newest["id"]
    own_file, shared_file, fresh_file = (_stored(files, b) for b in (own, shared, fresh))
    assert own_file.exists() and shared_file.exists() and fresh_file.exists()
    for sender in ("ann@example.com", "cy@example.com"):
        _age(db, conversations[sender], 40)

    # only the first tenant deletes: Ann's conversation goes, Bob's is recent
    rule = {tenant.slug: RetentionRule(days=30, action="delete")}
    done = privacy.apply_retention(db, settings.model_copy(update={"retention_tenants": rule}))
    assert (done.deleted, done.files) == (1, 1)
    assert not own_file.exists()  # only Ann's message held it
    assert shared_file.read_bytes() == shared  # the other tenant's kept message refers to it
    assert fresh_file.read_bytes() == fresh  # Bob's conversation is kept

    # every tenant deletes: the other tenant's old conversation goes, and the shared file
    everyone = settings.model_copy(update={"retention_days": 30, "retention_action": "delete"})
    done = privacy.apply_retention(db, everyone, batch=1)
    assert (done.deleted, done.files) == (1, 1)
    assert not shared_file.exists()
    assert fresh_file.read_bytes() == fresh
    assert privacy.apply_retention(db, everyone) == privacy.Retained(0, 0, 0)


def test_no_retention_by_default(db: Database, db_url: str) -> None:
    settings = Settings(database_url=db_url, environment="test")
    assert settings.retention_for("anyone").days is None
    assert privacy.apply_retention(db, settings) == privacy.Retained(0, 0)
