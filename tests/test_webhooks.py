"""Provider webhooks through the real app: signed with the providers' own SDKs (twilio's
``RequestValidator``, sendgrid's ``EventWebhook`` to check our ECDSA test signer, retell's
signer) or as their docs say (Meta's HMAC, Postmark's Basic auth, Vapi's secret), with the
payload fixtures the providers document. Each lands once, in the right conversation, with
the right contact; replays (three at once) store one message; bad input stores nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from retell.lib.webhook_auth import symmetric
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from conftest import TenantKey, make_tenant
from test_bad_input import counts
from threadline.api.app import create_app
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import Database, conversations, messages
from threadline.store.models import ActionLog

FIXTURES = Path(__file__).parent / "fixtures" / "channels"
PUBLIC = "https://hooks.example.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        public_url=PUBLIC,
        max_body_bytes=200_000,
        attachments_dir=str(tmp_path / "files"),
        max_attachment_bytes=20_000,
    )


@pytest.fixture
def app(settings: Settings, db: Database) -> Any:
    """The app without its background loops: no worker sends the test's outbound messages,
    and two clients (the API's and the providers') can share it."""
    return create_app(settings, db, background=())


@pytest.fixture
def hooks(app: Any) -> Iterator[TestClient]:
    """A client with no API key, as providers call."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def make_inbox(api: TestClient, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/inboxes", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC)
    return url[len(PUBLIC) :]


def rows(db: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def three_at_once(send: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(3) as pool:
        return [f.result() for f in [pool.submit(send) for _ in range(3)]]


# --- Twilio -----------------------------------------------------------------------------------

TOKEN = "twilio-auth-token"


@pytest.fixture
def twilio(api: TestClient) -> dict[str, Any]:
    return make_inbox(
        api,
        provider="twilio",
        address="+14155550100",
        credentials={"account_sid": "ACae0e2b1c", "auth_token": TOKEN},
    )


def twilio_post(hooks: TestClient, url: str, params: dict[str, str], token: str = TOKEN) -> Any:
    signature = RequestValidator(token).compute_signature(url, params)
    headers = FORM | {"X-Twilio-Signature": signature}
    return hooks.post(path_of(url), content=urlencode(params), headers=headers)


def sms(sid: str, body: str, sender: str = "+14155550123") -> dict[str, str]:
    return fixture("twilio_inbound_sms.json") | {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "Body": body,
        "From": sender,
    }


def test_twilio_sms_lands_once_with_its_contact_and_reuses_the_conversation(
    hooks: TestClient, api: TestClient, twilio: dict[str, Any], db: Database
) -> None:
    url = twilio["webhooks"]["inbound"]
    r = twilio_post(hooks, url, sms("SM1", "Table for 4 tonight?"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml") and "<Response/>" in r.text

    convs = api.get("/v1/conversations", params={"inbox_id": twilio["id"]}).json()["data"]
    assert len(convs) == 1
    conv = convs[0]
    assert (conv["channel"], conv["status"], conv["message_count"]) == ("sms", "needs_reply", 1)
    contact = api.get(f"/v1/contacts/{conv['contact_id']}").json()
    assert contact["phone"] == "+14155550123"
    msgs = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
    assert [(m["role"], m["direction"], m["content"], m["external_message_id"]) for m in msgs] == [
        ("user", "inbound", "Table for 4 tonight?", "SM1")
    ]

    # the same number again: the same open conversation; another number: its own
    assert twilio_post(hooks, url, sms("SM2", "At 7?")).status_code == 200
    assert twilio_post(hooks, url, sms("SM3", "Hello", sender="+14155550999")).status_code == 200
    convs = api.get("/v1/conversations", params={"inbox_id": twilio["id"]}).json()["data"]
    counts_by_contact = sorted(c["message_count"] for c in convs)
    assert counts_by_contact == [1, 2]


def test_twilio_replayed_three_times_at_once_stores_one_message(
    hooks: TestClient, twilio: dict[str, Any], db: Database
) -> None:
    url = twilio["webhooks"]["inbound"]
    params = sms("SMdup", "only once please")
    answers = three_at_once(lambda: twilio_post(hooks, url, params))
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert rows(db, "SELECT count(*) AS n FROM messages")[0]["n"] == 1
    assert rows(db, "SELECT count(*) AS n FROM conversations")[0]["n"] == 1
    assert rows(db, "SELECT count(*) AS n FROM contacts")[0]["n"] == 1
    # and again later, sequentially
    assert twilio_post(hooks, url, params).status_code == 200
    assert rows(db, "SELECT count(*) AS n FROM messages")[0]["n"] == 1


def test_twilio_mms_media_become_attachments(
    hooks: TestClient, api: TestClient, twilio: dict[str, Any]
) -> None:
    params = fixture("twilio_inbound_mms.json")
    assert twilio_post(hooks, twilio["webhooks"]["inbound"], params).status_code == 200
    conv = api.get("/v1/conversations").json()["data"][0]
    msg = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"][0]
    assert msg["attachments"] and msg["attachments"][0]["url"].startswith("https://")


def test_twilio_bad_input_stores_nothing(
    hooks: TestClient, twilio: dict[str, Any], db: Database
) -> None:
    url = twilio["webhooks"]["inbound"]
    params = sms("SMbad", "hi")
    before = counts(db)
    # a wrong token, a missing header, a tampered body
    assert twilio_post(hooks, url, params, token="wrong").status_code == 403
    assert hooks.post(path_of(url), content=urlencode(params), headers=FORM).status_code == 403
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    tampered = urlencode(params | {"Body": "changed"})
    r = hooks.post(path_of(url), content=tampered, headers=FORM | {"X-Twilio-Signature": signature})
    assert r.status_code == 403 and r.json()["error"]["code"] == "signature_invalid"
    # unknown inbox, unknown provider, unknown webhook name, a secret segment it has none for
    other = url.replace(twilio["id"], str(uuid.uuid4()))
    assert twilio_post(hooks, other, params).status_code == 404
    assert hooks.post("/webhooks/nope/" + twilio["id"] + "/inbound").status_code == 404
    assert hooks.post(f"/webhooks/meta/{twilio['id']}/inbound").status_code == 404
    assert hooks.post(f"/webhooks/twilio/{twilio['id']}/bogus").status_code == 404
    assert hooks.post(f"/webhooks/twilio/{twilio['id']}/inbound/s3cret").status_code == 404
    assert hooks.post("/webhooks/twilio/not-a-uuid/inbound").status_code == 404
    # malformed: signed, but no From
    broken = {k: v for k, v in params.items() if k != "From"}
    r = twilio_post(hooks, url, broken)
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_payload"
    # oversized
    huge = params | {"Body": "x" * 300_000}
    assert twilio_post(hooks, url, huge).status_code == 413
    assert counts(db) == before


def _outbound(
    db: Database, tenant: TenantKey, conversation_id: str, external_id: str | None
) -> str:
    """An outbound message already sent, with its delivery naming the provider's id."""
    sent = messages.append(
        db,
        tenant.tenant_id,
        uuid.UUID(conversation_id),
        [{"role": "assistant", "content": "See you at 7", "delivery_status": "sent"}],
    )
    message_id = sent.messages[0]["id"]
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE message_deliveries SET external_message_id = :e WHERE message_id = :m"),
            {"e": external_id, "m": message_id if db.dialect != "sqlite" else message_id.hex},
        )
    return str(message_id)


def test_twilio_status_callbacks_move_the_delivery_and_are_kept(
    hooks: TestClient, api: TestClient, twilio: dict[str, Any], db: Database, tenant: TenantKey
) -> None:
    assert twilio_post(hooks, twilio["webhooks"]["inbound"], sms("SM1", "hi")).status_code == 200
    conv = api.get("/v1/conversations").json()["data"][0]
    sid = "SM1f0e8e2a9c1d4b6f8e7d6c5b4a3f2e1d"
    message_id = _outbound(db, tenant, conv["id"], sid)
    status_url = twilio["webhooks"]["status"]

    delivered = {"MessageSid": sid, "MessageStatus": "delivered", "To": "+14155550123"}
    assert twilio_post(hooks, status_url, delivered).status_code == 200
    failed = fixture("twilio_status_undelivered.json")  # late and out of order: kept, no change
    assert twilio_post(hooks, status_url, failed).status_code == 200

    msg = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"][-1]
    assert msg["id"] == message_id
    assert (msg["delivery_status"], msg["external_message_id"]) == ("delivered", sid)
    assert msg["delivered_at"] is not None
    events = rows(
        db,
        "SELECT status, provider_status, error_code FROM message_status_events "
        "ORDER BY created_at, id",
    )
    assert [(e["status"], e["provider_status"], e["error_code"]) for e in events] == [
        ("delivered", "delivered", None),
        ("failed", "undelivered", "30003"),
    ]


def test_twilio_failure_records_the_providers_error(
    hooks: TestClient, api: TestClient, twilio: dict[str, Any], db: Database, tenant: TenantKey
) -> None:
    assert twilio_post(hooks, twilio["webhooks"]["inbound"], sms("SM1", "hi")).status_code == 200
    conv = api.get("/v1/conversations").json()["data"][0]
    callback = fixture("twilio_status_undelivered.json")
    _outbound(db, tenant, conv["id"], callback["MessageSid"])
    assert twilio_post(hooks, twilio["webhooks"]["status"], callback).status_code == 200
    row = rows(db, "SELECT status, error, error_code FROM message_deliveries")[0]
    assert (row["status"], row["error_code"]) == ("failed", "30003")
    assert "30003" in row["error"]


def test_a_status_for_an_unknown_message_is_kept_and_answered_200(
    hooks: TestClient, twilio: dict[str, Any], db: Database
) -> None:
    before = counts(db)
    callback = {"MessageSid": "SMunknown", "MessageStatus": "delivered"}
    r = twilio_post(hooks, twilio["webhooks"]["status"], callback)
    assert r.status_code == 200, r.text
    after = counts(db)
    assert after["message_status_events"] == before["message_status_events"] + 1
    assert {k: v for k, v in after.items() if k != "message_status_events"} == {
        k: v for k, v in before.items() if k != "message_status_events"
    }
    event = rows(db, "SELECT message_id, external_message_id, status FROM message_status_events")
    assert event == [
        {"message_id": None, "external_message_id": "SMunknown", "status": "delivered"}
    ]


# --- WhatsApp (Meta) --------------------------------------------------------------------------

APP_SECRET = "meta-app-secret"


@pytest.fixture
def whatsapp(api: TestClient) -> dict[str, Any]:
    return make_inbox(
        api,
        provider="meta",
        address="106540352242922",
        credentials={"access_token": "EAAG", "app_secret": APP_SECRET, "verify_token": "vt-1"},
    )


def meta_post(hooks: TestClient, url: str, payload: Any, secret: str = APP_SECRET) -> Any:
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = JSON | {"X-Hub-Signature-256": f"sha256={digest}"}
    return hooks.post(path_of(url), content=body, headers=headers)


def test_whatsapp_verification_handshake(hooks: TestClient, whatsapp: dict[str, Any]) -> None:
    path = path_of(whatsapp["webhooks"]["inbound"])
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "1158201444"}
    r = hooks.get(path, params=query)
    assert (r.status_code, r.text) == (200, "1158201444")
    assert hooks.get(path, params=query | {"hub.verify_token": "nope"}).status_code == 403


def test_whatsapp_messages_and_statuses(
    hooks: TestClient, api: TestClient, whatsapp: dict[str, Any], db: Database, tenant: TenantKey
) -> None:
    url = whatsapp["webhooks"]["inbound"]
    payload = fixture("whatsapp_inbound_messages.json")
    answers = three_at_once(lambda: meta_post(hooks, url, payload))
    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
    stored = len(payload["entry"][0]["changes"][0]["value"]["messages"])
    convs = api.get("/v1/conversations", params={"inbox_id": whatsapp["id"]}).json()["data"]
    assert len(convs) == 1 and convs[0]["channel"] == "whatsapp"
    assert rows(db, "SELECT count(*) AS n FROM messages")[0]["n"] <= stored
    contact = api.get(f"/v1/contacts/{convs[0]['contact_id']}").json()
    assert (contact["phone"], contact["name"]) == ("+16505551234", "Sheena Nelson")

    statuses = fixture("whatsapp_statuses.json")
    sent = statuses["entry"][0]["changes"][0]["value"]["statuses"]
    _outbound(db, tenant, convs[0]["id"], sent[0]["id"])
    assert meta_post(hooks, url, statuses).status_code == 200
    delivery = rows(db, "SELECT status FROM message_deliveries")
    assert delivery == [{"status": "delivered"}]
    kept = rows(db, "SELECT status, message_id FROM message_status_events ORDER BY status")
    assert [k["status"] for k in kept] == ["delivered", "failed"]
    assert kept[1]["message_id"] is None  # the failed one names a message we never sent

    before = counts(db)
    assert meta_post(hooks, url, payload, secret="other").status_code == 403
    assert hooks.post(path_of(url), content=b"{}", headers=JSON).status_code == 403
    assert (
        meta_post(hooks, url, {"object": "whatsapp_business_account", "entry": 5}).status_code
        == 400
    )
    assert counts(db) == before


def test_sms_and_whatsapp_from_one_number_are_one_contact(
    hooks: TestClient, api: TestClient, twilio: dict[str, Any], whatsapp: dict[str, Any]
) -> None:
    assert (
        twilio_post(
            hooks, twilio["webhooks"]["inbound"], sms("SM1", "hi", "+16505551234")
        ).status_code
        == 200
    )
    assert (
        meta_post(
            hooks, whatsapp["webhooks"]["inbound"], fixture("whatsapp_inbound_messages.json")
        ).status_code
        == 200
    )
    convs = api.get("/v1/conversations").json()["data"]
    assert len(convs) == 2
    assert len({c["contact_id"] for c in convs}) == 1
    assert len(api.get("/v1/contacts").json()["data"]) == 1


# --- email: Postmark, SendGrid ----------------------------------------------------------------


@pytest.fixture
def postmark(api: TestClient) -> dict[str, Any]:
    return make_inbox(
        api,
        provider="postmark",
        address="support@shop.example",
        credentials={"server_token": "pm-token"},
    )


def postmark_post(
    hooks: TestClient, inbox: dict[str, Any], payload: Any, name: str = "inbound"
) -> Any:
    user = inbox["generated_credentials"]["webhook_username"]
    password = inbox["generated_credentials"]["webhook_password"]
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = JSON | {"Authorization": f"Basic {auth}"}
    return hooks.post(path_of(inbox["webhooks"][name]), json=payload, headers=headers)


def test_postmark_email_threads_by_its_headers(
    hooks: TestClient, api: TestClient, postmark: dict[str, Any], db: Database
) -> None:
    first = fixture("postmark_inbound.json")
    assert postmark_post(hooks, postmark, first).status_code == 200
    convs = api.get("/v1/conversations").json()["data"]
    assert len(convs) == 1 and convs[0]["title"] == "Re: Your order #1042"
    contact = api.get(f"/v1/contacts/{convs[0]['contact_id']}").json()
    assert contact["email"] == "ann.customer@example.com"

    # a reply to that mail (In-Reply-To its Message-ID) joins the thread
    own_id = next(h["Value"] for h in first["Headers"] if h["Name"] == "Message-ID")
    reply = first | {
        "MessageID": "second",
        "Headers": [
            {"Name": "Message-ID", "Value": "<second@mail.example.com>"},
            {"Name": "In-Reply-To", "Value": own_id},
        ],
        "TextBody": "One more thing.",
        "StrippedTextReply": "One more thing.",
    }
    answers = three_at_once(lambda: postmark_post(hooks, postmark, reply))
    assert all(a.status_code == 200 for a in answers)
    # a new mail on another subject, not a reply: a new conversation
    fresh = reply | {
        "Subject": "Opening hours",
        "Headers": [{"Name": "Message-ID", "Value": "<third@mail.example.com>"}],
    }
    assert postmark_post(hooks, postmark, fresh).status_code == 200
    convs = api.get("/v1/conversations").json()["data"]
    assert sorted(c["message_count"] for c in convs) == [1, 2]

    before = counts(db)
    bad = postmark | {"generated_credentials": {"webhook_username": "x", "webhook_password": "y"}}
    assert postmark_post(hooks, bad, first).status_code == 403
    assert postmark_post(hooks, postmark, {"Subject": "no sender"}).status_code == 400
    assert counts(db) == before


def test_postmark_attachments_are_files_named_by_their_content(
    hooks: TestClient, api: TestClient, postmark: dict[str, Any], settings: Settings
) -> None:
    folder = Path(str(settings.attachments_dir))
    pdf = b"%PDF-1.4 invoice 1042\n" * 100  # 2.2 kB
    big = bytes(range(256)) * 100  # 25.6 kB: over the 20 kB attachment limit
    payload = fixture("postmark_inbound.json") | {
        "Attachments": [
            {
                "Name": "../../etc/passwd",  # a hostile name never becomes a path
                "Content": base64.b64encode(pdf).decode(),
                "ContentType": "application/pdf",
                "ContentLength": len(pdf),
            },
            {
                "Name": "photo.jpg",
                "Content": base64.b64encode(big).decode(),
                "ContentType": "image/jpeg",
                "ContentLength": len(big),
                "ContentID": "photo@01",
            },
            {  # the same bytes again: one file
                "Name": "copy.pdf",
                "Content": base64.b64encode(pdf).decode(),
                "ContentType": "application/pdf",
                "ContentLength": len(pdf),
            },
        ],
    }
    answers = three_at_once(lambda: postmark_post(hooks, postmark, payload))
    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text

    (conv,) = api.get("/v1/conversations").json()["data"]
    (msg,) = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
    kept, skipped, again = msg["attachments"]
    digest = hashlib.sha256(pdf).hexdigest()
    assert kept == {
        "filename": "../../etc/passwd",
        "content_type": "application/pdf",
        "size": len(pdf),
        "sha256": digest,
        "stored": True,
        "path": f"{digest[:2]}/{digest}",
    }
    assert (folder / kept["path"]).read_bytes() == pdf
    assert again["path"] == kept["path"] and again["filename"] == "copy.pdf"
    assert skipped["stored"] is False and "20000-byte" in skipped["reason"]
    assert skipped["sha256"] == hashlib.sha256(big).hexdigest()
    assert (skipped["size"], skipped["provider_id"]) == (len(big), "photo@01")
    assert "path" not in skipped
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    assert files == [Path(kept["path"])]  # nothing else, no temporary file left behind

    # over the request limit: 413, nothing stored, no file written
    huge = base64.b64encode(b"x" * 180_000).decode()
    payload["MessageID"] = "too-big"
    payload["Attachments"] = [{"Name": "a.bin", "Content": huge, "ContentType": "x/y"}]
    payload["Headers"] = [{"Name": "Message-ID", "Value": "<too-big@mail.example.com>"}]
    assert postmark_post(hooks, postmark, payload).status_code == 413
    assert len(api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]) == 1
    assert sorted(p for p in folder.rglob("*") if p.is_file()) == [folder / kept["path"]]


def test_postmark_delivery_event_finds_the_message_by_our_id(
    hooks: TestClient, api: TestClient, postmark: dict[str, Any], db: Database, tenant: TenantKey
) -> None:
    assert postmark_post(hooks, postmark, fixture("postmark_inbound.json")).status_code == 200
    conv = api.get("/v1/conversations").json()["data"][0]
    message_id = _outbound(db, tenant, conv["id"], None)
    event = fixture("postmark_delivery.json")
    event["Metadata"] = {"threadline_message_id": message_id}
    assert postmark_post(hooks, postmark, event, name="events").status_code == 200
    delivery = rows(db, "SELECT status, external_message_id FROM message_deliveries")[0]
    assert delivery["status"] == "delivered"
    assert delivery["external_message_id"] == event["MessageID"]


PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def test_sendgrid_inbound_parse_by_url_secret_and_signed_events(
    hooks: TestClient, api: TestClient, db: Database, tenant: TenantKey
) -> None:
    inbox = make_inbox(
        api,
        provider="sendgrid",
        address="support@shop.example",
        credentials={"api_key": "SG.x", "event_verification_key": PUBLIC_KEY},
    )
    inbound = path_of(inbox["webhooks"]["inbound"])
    fields = fixture("sendgrid_inbound_fields.json")
    answers = three_at_once(lambda: hooks.post(inbound, data=fields))
    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
    assert rows(db, "SELECT count(*) AS n FROM messages")[0]["n"] == 1
    conv = api.get("/v1/conversations").json()["data"][0]
    assert conv["channel"] == "email"

    before = counts(db)
    wrong = inbound.rsplit("/", 1)[0] + "/not-the-secret"
    assert hooks.post(wrong, data=fields).status_code == 403
    assert hooks.post(inbound.rsplit("/", 1)[0], data=fields).status_code == 403
    assert counts(db) == before

    # the Event Webhook, signed as SendGrid signs (checked with SendGrid's own verifier)
    message_id = _outbound(db, tenant, conv["id"], "14c5d75ce93")
    body = json.dumps(
        [{"email": "a@example.com", "timestamp": int(time.time()), "event": "delivered",
          "sg_message_id": "14c5d75ce93.filter-123.0"}]
    ).encode()  # fmt: skip
    ts = str(int(time.time()))
    signature = base64.b64encode(
        PRIVATE.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()
    checker = EventWebhook()
    assert checker.verify_signature(
        body.decode(), signature, ts, checker.convert_public_key_to_ecdsa(PUBLIC_KEY)
    )
    headers = JSON | {
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }
    assert (
        hooks.post(path_of(inbox["webhooks"]["events"]), content=body, headers=headers).status_code
        == 200
    )
    got = api.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
    assert next(m for m in got if m["id"] == message_id)["delivery_status"] == "delivered"
    headers["X-Twilio-Email-Event-Webhook-Signature"] = signature[:-4] + "AAA="
    assert (
        hooks.post(path_of(inbox["webhooks"]["events"]), content=body, headers=headers).status_code
        == 403
    )


# --- Yelp through Zapier ----------------------------------------------------------------------


@pytest.fixture
def yelp(api: TestClient) -> dict[str, Any]:
    return make_inbox(api, provider="zapier", address="WavvLdfdP6g8aZTtbBQHTw")


def zap(hooks: TestClient, inbox: dict[str, Any], name: str, **kw: Any) -> Any:
    token = inbox["generated_credentials"]["webhook_token"]
    headers = {"X-Webhook-Token": token} | kw.pop("headers", {})
    return hooks.post(path_of(inbox["webhooks"][name]), headers=headers, **kw)


def test_yelp_lead_and_its_messages_are_one_conversation(
    hooks: TestClient, api: TestClient, yelp: dict[str, Any], db: Database, tenant: TenantKey
) -> None:
    lead = fixture("zapier_yelp_lead_created.json")
    answers = three_at_once(lambda: zap(hooks, yelp, "inbound", json=lead))
    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
    follow = {
        "zap_event": "new_message",
        "lead_id": lead["lead_id"],
        "event_id": "evt-2",
        "event_type": "TEXT",
        "user_type": "CONSUMER",
        "user_display_name": "Frances W.",
        "message_text": "Any time after 2pm works",
        "interaction_time": "2025-11-25T09:45:00+00:00",
    }
    assert zap(hooks, yelp, "inbound", data=follow).status_code == 200  # form data too
    biz = follow | {"event_id": "evt-3", "user_type": "BIZ", "message_text": "On our way"}
    assert zap(hooks, yelp, "inbound", json=biz).status_code == 200

    convs = api.get("/v1/conversations").json()["data"]
    assert len(convs) == 1 and convs[0]["message_count"] == 3
    msgs = api.get(f"/v1/conversations/{convs[0]['id']}/messages").json()["data"]
    assert [m["direction"] for m in msgs] == ["inbound", "inbound", "outbound"]
    contact = api.get(f"/v1/contacts/{convs[0]['contact_id']}").json()
    assert contact["name"] == "Frances W." and contact["phone"] == "+14155550199"
    assert contact["email"] == "frances.w.7xk2@messaging.yelp.com"
    ext = rows(db, "SELECT external_conversation_id FROM conversations")[0]
    assert ext["external_conversation_id"] == lead["lead_id"]

    before = counts(db)
    assert (
        zap(hooks, yelp, "inbound", json=lead, headers={"X-Webhook-Token": "x"}).status_code == 403
    )
    assert zap(hooks, yelp, "inbound", json={"zap_event": "other"}).status_code == 400
    assert counts(db) == before


def test_the_zapier_outbox_hands_each_reply_out_once(
    hooks: TestClient, api: TestClient, yelp: dict[str, Any], db: Database, tenant: TenantKey
) -> None:
    lead = fixture("zapier_yelp_lead_created.json")
    assert zap(hooks, yelp, "inbound", json=lead).status_code == 200
    conv = api.get("/v1/conversations").json()["data"][0]
    # two replies the delivery worker handed to the outbox (queued, no next attempt)
    ids = []
    for text in ("We can come at 3pm", "Bring a ladder?"):
        stored = messages.append(
            db,
            tenant.tenant_id,
            uuid.UUID(conv["id"]),
            [{"role": "assistant", "content": text, "delivery_status": "queued"}],
        )
        ids.append(str(stored.messages[0]["id"]))

    fetched = three_at_once(lambda: zap(hooks, yelp, "outbox", json={"limit": 10}))
    assert all(f.status_code == 200 for f in fetched), fetched[0].text
    handed = [item for f in fetched for item in f.json()]
    assert sorted(i["id"] for i in handed) == sorted(ids)  # each once, across overlapping polls
    assert {i["lead_id"] for i in handed} == {lead["lead_id"]}
    assert zap(hooks, yelp, "outbox", json={}).json() == []  # claimed: not served again

    r = zap(hooks, yelp, "outbox", json={"ack": ids})
    assert r.json() == {"acknowledged": 2}
    assert zap(hooks, yelp, "outbox", json={"ack": ids}).json() == {"acknowledged": 0}
    assert {d["status"] for d in rows(db, "SELECT status FROM message_deliveries")} == {"sent"}
    kept = rows(db, "SELECT provider_status FROM message_status_events")
    assert [k["provider_status"] for k in kept] == ["acknowledged", "acknowledged"]
    assert zap(hooks, yelp, "outbox", json={"ack": ["not-an-id"]}).status_code == 400
    assert zap(hooks, yelp, "outbox", json={}, headers={"X-Webhook-Token": "x"}).status_code == 403


# --- voice ------------------------------------------------------------------------------------


def test_vapi_call_is_one_transcript_in_its_own_conversation_with_actions(
    hooks: TestClient, api: TestClient, db: Database
) -> None:
    inbox = make_inbox(api, provider="vapi", address="+14155550100")
    secret = inbox["generated_credentials"]["secret"]
    report = fixture("vapi_end_of_call_report.json")
    path = path_of(inbox["webhooks"]["inbound"])
    send = lambda: hooks.post(path, json=report, headers={"X-Vapi-Secret": secret})  # noqa: E731
    assert [a.status_code for a in three_at_once(send)] == [200, 200, 200]
    convs = api.get("/v1/conversations").json()["data"]
    assert len(convs) == 1 and convs[0]["channel"] == "voice"
    msgs = api.get(f"/v1/conversations/{convs[0]['id']}/messages").json()["data"]
    assert len(msgs) == 1 and msgs[0]["message_type"] == "transcript"
    assert msgs[0]["channel_data"]["segments"]
    # the one function call, once across the three replays, on the transcript message
    actions = rows(db, "SELECT action_name, action_type, message_id FROM action_logs")
    assert len(actions) == 1
    assert actions[0]["action_type"] == "function_call"
    assert str(uuid.UUID(str(actions[0]["message_id"]))) == msgs[0]["id"]
    other = report | {
        "message": report["message"] | {"call": report["message"]["call"] | {"id": "call-2"}}
    }
    assert hooks.post(path, json=other, headers={"X-Vapi-Secret": secret}).status_code == 200
    assert len(api.get("/v1/conversations").json()["data"]) == 2  # one conversation per call
    assert hooks.post(path, json=report, headers={"X-Vapi-Secret": "nope"}).status_code == 403


def test_a_call_and_its_actions_are_stored_together_or_not_at_all(
    db: Database, settings: Settings, tenant: TenantKey
) -> None:
    """The transcript and its function calls share the append's transaction: when writing
    the actions fails, the message is not stored either, and a replay is not given them
    twice."""

    conv = conversations.create(db, tenant.tenant_id, {"channel": "voice"})
    assert rows(db, "SELECT id FROM messages") == []
    written: list[int] = []

    def actions_then_fail(conn: sa.Connection, new: list[dict[str, Any]]) -> None:
        conn.execute(
            sa.insert(ActionLog),
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant.tenant_id,
                "conversation_id": conv.id,
                "message_id": new[0]["id"],
                "action_name": "book",
                "action_type": "function_call",
                "created_at": new[0]["created_at"],
            },
        )
        written.append(len(new))
        raise RuntimeError("the action log is full")

    ingest = Ingest(db, settings)
    item = {"role": "user", "content": "transcript", "external_message_id": "call-9"}
    with pytest.raises(RuntimeError):
        ingest.append(tenant.tenant_id, conv.id, [item], extra=actions_then_fail)
    assert written and written[0] == 1
    assert rows(db, "SELECT id FROM messages") == []
    assert rows(db, "SELECT id FROM action_logs") == []

    calls: list[int] = []
    first = ingest.append(
        tenant.tenant_id, conv.id, [item], extra=lambda c, new: calls.append(len(new))
    )
    again = ingest.append(
        tenant.tenant_id, conv.id, [item], extra=lambda c, new: calls.append(len(new))
    )
    assert (first.created, again.created) == (True, False)
    assert calls == [1]  # not called for a replay


def test_retell_call_analyzed_signed_by_the_sdk(hooks: TestClient, api: TestClient) -> None:
    inbox = make_inbox(
        api, provider="retell", address="+14155550100", credentials={"api_key": "rk"}
    )
    body = (FIXTURES / "retell_call_analyzed.json").read_text()
    headers = JSON | {"X-Retell-Signature": symmetric["sign"](body, "rk", int(time.time() * 1000))}
    r = hooks.post(path_of(inbox["webhooks"]["inbound"]), content=body.encode(), headers=headers)
    assert r.status_code == 200, r.text
    conv = api.get("/v1/conversations").json()["data"][0]
    assert conv["channel"] == "voice" and conv["message_count"] == 1


# --- contacts merge ---------------------------------------------------------------------------


def test_merge_moves_conversations_and_identities(
    hooks: TestClient,
    api: TestClient,
    app: Any,
    twilio: dict[str, Any],
    postmark: dict[str, Any],
    db: Database,
) -> None:
    assert (
        twilio_post(
            hooks, twilio["webhooks"]["inbound"], sms("SM1", "hi", "+14155550123")
        ).status_code
        == 200
    )
    assert postmark_post(hooks, postmark, fixture("postmark_inbound.json")).status_code == 200
    contacts = api.get("/v1/contacts").json()["data"]
    assert len(contacts) == 2
    by_channel = {(c["phone"] and "sms") or "email": c for c in contacts}
    keep, gone = by_channel["sms"], by_channel["email"]
    api.patch(f"/v1/contacts/{keep['id']}", json={"attributes": {"plan": "pro"}})
    api.patch(f"/v1/contacts/{gone['id']}", json={"attributes": {"plan": "free", "vip": True}})

    assert (
        api.post(
            f"/v1/contacts/{keep['id']}/merge", json={"from_contact_id": keep["id"]}
        ).status_code
        == 422
    )
    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as c:
        r = c.post(f"/v1/contacts/{keep['id']}/merge", json={"from_contact_id": gone["id"]})
        assert r.status_code == 404
    r = api.post(f"/v1/contacts/{keep['id']}/merge", json={"from_contact_id": gone["id"]})
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["id"] == keep["id"]
    assert merged["attributes"] == {"plan": "pro", "vip": True}
    assert merged["email"] == "ann.customer@example.com" and merged["phone"] == "+14155550123"
    assert api.get(f"/v1/contacts/{gone['id']}").status_code == 404
    convs = api.get("/v1/conversations").json()["data"]
    assert {c["contact_id"] for c in convs} == {keep["id"]} and len(convs) == 2
    # the moved email identity now finds the survivor
    reply = fixture("postmark_inbound.json") | {
        "Subject": "New question",
        "Headers": [{"Name": "Message-ID", "Value": "<later@mail.example.com>"}],
    }
    assert postmark_post(hooks, postmark, reply).status_code == 200
    assert {c["contact_id"] for c in api.get("/v1/conversations").json()["data"]} == {keep["id"]}
    # and an edit of the survivor's phone keeps the identity the merge brought
    api.patch(f"/v1/contacts/{keep['id']}", json={"phone": "+14155550124"})
    identities = rows(db, "SELECT channel, address FROM contact_identities ORDER BY address")
    assert {(i["channel"], i["address"]) for i in identities} == {
        ("email", "ann.customer@example.com"),
        ("sms", "+14155550124"),
    }
