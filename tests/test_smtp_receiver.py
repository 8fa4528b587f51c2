"""``threadline smtp``'s receiver on loopback, spoken to with the stdlib's smtplib: mail for
an smtp inbox is stored and threaded, a replay is stored once, an unknown recipient is refused."""

from __future__ import annotations

import hashlib
import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from test_bad_input import counts
from threadline.ingest import Ingest
from threadline.receive import Receiver
from threadline.settings import Settings
from threadline.smtpd import controller
from threadline.store import Database


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        embeddings="none",
        attachments_dir=str(tmp_path / "files"),
        max_attachment_bytes=10_000,
    )


@pytest.fixture
def inbox(api: TestClient) -> dict[str, Any]:
    r = api.post(
        "/v1/inboxes",
        json={
            "provider": "smtp",
            "address": "Support@Shop.Example",
            "credentials": {"host": "smtp.shop.example", "port": 587},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["webhooks"] == {}
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def smtp_port(db: Database, settings: Settings, inbox: dict[str, Any]) -> Iterator[int]:
    port = _free_port()
    server = controller(Receiver(db, settings, Ingest(db, settings)), "127.0.0.1", port)
    server.start()
    yield port
    server.stop()


def mail(message_id: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Customer <Ann@Example.com>"
    msg["To"] = "support@shop.example"
    msg["Subject"] = headers.pop("subject", "Opening hours")
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def test_mail_is_stored_threaded_and_once(smtp_port: int, api: TestClient, db: Database) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        assert client.send_message(mail("<m1@example.com>", "Are you open on Sunday?")) == {}
        # a mail server retrying the same message
        assert client.send_message(mail("<m1@example.com>", "Are you open on Sunday?")) == {}
        reply = mail(
            "<m2@example.com>",
            "And on Monday?\n\nOn Sun, Shop wrote:\n> We are.",
            subject="Re: Opening hours",
            In_Reply_To="<m1@example.com>",
            References="<m1@example.com>",
        )
        assert client.send_message(reply) == {}
    convs = api.get("/v1/conversations").json()["data"]
    assert len(convs) == 1 and convs[0]["channel"] == "email"
    assert convs[0]["message_count"] == 2
    contact = api.get(f"/v1/contacts/{convs[0]['contact_id']}").json()
    assert (contact["email"], contact["name"]) == ("ann@example.com", "Ann Customer")
    msgs = api.get(f"/v1/conversations/{convs[0]['id']}/messages").json()["data"]
    assert [m["external_message_id"] for m in msgs] == ["<m1@example.com>", "<m2@example.com>"]
    assert msgs[1]["content"] == "And on Monday?"  # the quoted history stripped
    assert "We are." in msgs[1]["channel_data"]["full_text"]  # and kept


def test_an_unknown_recipient_is_refused_and_nothing_stored(smtp_port: int, db: Database) -> None:
    before = counts(db)
    msg = mail("<m3@example.com>", "hello")
    del msg["To"]
    msg["To"] = "nobody@shop.example"
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            client.send_message(msg)
        code, _ = info.value.recipients["nobody@shop.example"]
        assert code == 550
        # a message without a From header cannot be stored: refused, not half-kept
        with pytest.raises(smtplib.SMTPDataError) as data_error:
            client.sendmail(
                "x@example.com", ["support@shop.example"], b"Subject: hi\r\n\r\nbody\r\n"
            )
        assert data_error.value.smtp_code == 554
    assert counts(db) == before
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == 0


def test_mail_attachments_are_kept_as_files(
    smtp_port: int, api: TestClient, settings: Settings
) -> None:
    folder = Path(str(settings.attachments_dir))
    msg = mail("<files@example.com>", "The photos of the leak, and the quote.")
    quote = b"Quote 1042: kitchen tap, 2 hours.\n" * 20
    photo = bytes(range(256)) * 50  # 12.8 kB: over the 10 kB limit
    msg.add_attachment(quote, maintype="text", subtype="plain", filename="/tmp/../quote.txt")
    msg.add_attachment(photo, maintype="image", subtype="jpeg", filename="leak.jpg")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        assert client.send_message(msg) == {}
    (conv,) = api.get("/v1/conversations").json()["data"]
    (stored,) = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
    assert stored["content"].startswith("The photos of the leak")
    text, image = stored["attachments"]
    digest = hashlib.sha256(quote).hexdigest()
    assert text == {
        "filename": "/tmp/../quote.txt",
        "content_type": "text/plain",
        "size": len(quote),
        "sha256": digest,
        "stored": True,
        "path": f"{digest[:2]}/{digest}",
    }
    assert (folder / text["path"]).read_bytes() == quote
    assert (image["filename"], image["size"], image["stored"]) == ("leak.jpg", len(photo), False)
    assert image["sha256"] == hashlib.sha256(photo).hexdigest() and "path" not in image
    assert [p for p in folder.rglob("*") if p.is_file()] == [folder / text["path"]]
