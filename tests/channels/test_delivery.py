"""Sending: ``"send": true`` queues in the message's transaction, the worker sends through the
provider (played by a local HTTP server, or a real SMTP server), retries what may pass later,
fails what never will, and never sends one message twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from conftest import TenantKey, make_tenant
from threadline.api.app import create_app
from threadline.jobs.deliver import Deliverer, backoff, client_for
from threadline.settings import Settings
from threadline.store import Database, deliveries, inboxes
from threadline.store.models import Event, Message, MessageDelivery, MessageStatusEvent

from .fakes import ProviderAPI, Reply, closed_port_url
from .test_email_smtp import Recorder, smtp_server  # noqa: F401 - the fixture

ACCOUNT = "AC" + "0" * 32
TWILIO_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
PHONE_ID = "106540352242922"
WHATSAPP_PATH = f"/v21.0/{PHONE_ID}/messages"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        delivery_backoff_seconds=0.01,
        delivery_timeout_seconds=1,
        delivery_max_attempts=3,
        public_url="https://tl.example.com",
    )


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    """The API without background loops: each test runs the worker's rounds itself."""
    return create_app(settings, db, background=())


@pytest.fixture
def worker(db: Database, settings: Settings) -> Iterator[Deliverer]:
    client = client_for(settings)
    deliverer = Deliverer(db, settings, client)
    yield deliverer
    deliverer.close()
    client.close()


def twilio_inbox(db: Database, settings: Settings, tenant: TenantKey, base: str) -> str:
    view = inboxes.create(
        db,
        settings,
        tenant.tenant_id,
        {
            "provider": "twilio",
            "address": "+14155550199",
            "credentials": {"account_sid": ACCOUNT, "auth_token": "tok"},
            "config": {"api_base_url": base},
        },
    )
    return str(view.id)


def start(api: TestClient, inbox_id: str | None, **contact: str) -> str:
    body: dict[str, Any] = {"contact": contact or {"name": "Ada", "phone": "+14155550100"}}
    if inbox_id:
        body["inbox_id"] = inbox_id
    r = api.post("/v1/conversations", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def send(api: TestClient, conversation_id: str, text: str, **extra: Any) -> httpx.Response:
    body = {"role": "assistant", "content": text, "send": True, **extra}
    return api.post(f"/v1/conversations/{conversation_id}/messages", json=body)


def delivery(db: Database, tenant: TenantKey, message_id: str) -> dict[str, Any]:
    row = deliveries.get(db, tenant.tenant_id, uuid.UUID(message_id))
    assert row is not None
    return row


def posts(api_: ProviderAPI, path: str) -> list[Any]:
    return [r for r in api_.requests if r.method == "POST" and r.path.split("?")[0] == path]


def twilio_ok(sid: str, body: str = "") -> Reply:
    return Reply(201, {"sid": sid, "status": "queued", "body": body, "num_segments": "1"})


def rounds(worker: Deliverer, until: Any, timeout: float = 10) -> None:
    """Run worker rounds until ``until()`` holds (retries wait out their short backoff)."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        if not worker.run_once():
            time.sleep(0.02)


# -- "send": true ------------------------------------------------------------------------


def test_send_queues_the_message_and_its_job_together(
    api: TestClient, db: Database, settings: Settings, tenant: TenantKey, provider_api: ProviderAPI
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    r = send(api, conv, "Your table is booked.", external_message_id=None)
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["delivery_status"] == "queued"
    row = delivery(db, tenant, msg["id"])
    assert row["status"] == "queued" and row["attempts"] == 0
    assert row["next_attempt_at"] is not None
    assert row["next_attempt_at"] <= row["created_at"] + timedelta(seconds=1)


def test_replays_do_not_queue_twice(
    api: TestClient, db: Database, settings: Settings, tenant: TenantKey, provider_api: ProviderAPI
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    headers = {"Idempotency-Key": "reply-1"}
    first = api.post(
        f"/v1/conversations/{conv}/messages",
        json={"role": "assistant", "content": "Hi", "send": True},
        headers=headers,
    )
    again = api.post(
        f"/v1/conversations/{conv}/messages",
        json={"role": "assistant", "content": "Hi", "send": True},
        headers=headers,
    )
    assert (first.status_code, again.status_code) == (201, 200)
    by_ext = [send(api, conv, "Bye", external_message_id="ours-7") for _ in range(2)]
    assert [r.status_code for r in by_ext] == [201, 200]
    with db.connect() as conn:
        count = conn.scalar(
            sa.select(sa.func.count())
            .select_from(MessageDelivery)
            .where(MessageDelivery.tenant_id == tenant.tenant_id)
        )
    assert count == 2


def test_send_without_an_inbox_is_422_and_stores_nothing(
    api: TestClient, db: Database, tenant: TenantKey
) -> None:
    conv = start(api, None)
    r = send(api, conv, "Hello?")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert "no inbox" in r.json()["error"]["message"]
    batch = api.post(
        f"/v1/conversations/{conv}/messages/batch",
        json={
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "send": True},
            ]
        },
    )
    assert batch.status_code == 422
    with db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Message)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(MessageDelivery)) == 0
    assert api.get(f"/v1/conversations/{conv}").json()["message_count"] == 0


def test_only_outbound_messages_are_sent(
    api: TestClient, db: Database, settings: Settings, tenant: TenantKey, provider_api: ProviderAPI
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    r = api.post(
        f"/v1/conversations/{conv}/messages",
        json={"role": "user", "content": "Hi", "send": True},
    )
    assert r.status_code == 422
    assert "outbound" in r.json()["error"]["message"]


# -- the worker --------------------------------------------------------------------------


def test_twilio_send_is_one_call_and_the_delivery_goes_queued_to_sent(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    inbox_id = twilio_inbox(db, settings, tenant, provider_api.url)
    conv = start(api, inbox_id)
    provider_api.reply("POST", TWILIO_PATH, twilio_ok("SM" + "1" * 32))
    msg = send(api, conv, "See you at 7.").json()

    assert worker.run_once() == 1
    assert worker.run_once() == 0
    (req,) = provider_api.requests
    assert (req.method, req.path) == ("POST", TWILIO_PATH)
    form = req.form()
    assert form["To"] == ["+14155550100"]
    assert form["From"] == ["+14155550199"]
    assert form["Body"] == ["See you at 7."]
    assert form["StatusCallback"][0].startswith("https://tl.example.com/webhooks/twilio/")
    assert req.headers["authorization"].startswith("Basic ")

    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert row["external_message_id"] == "SM" + "1" * 32
    assert row["sent_at"] is not None and row["next_attempt_at"] is None
    shown = api.get(f"/v1/conversations/{conv}/messages").json()["data"][0]
    assert shown["delivery_status"] == "sent"
    assert shown["external_message_id"] == "SM" + "1" * 32
    events = api.get(f"/v1/messages/{msg['id']}/events")
    assert events.status_code == 200
    (event,) = events.json()["data"]
    assert event["status"] == "sent"
    assert event["external_message_id"] == "SM" + "1" * 32


def test_a_status_callback_before_the_send_is_recorded_is_attached_and_applied(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
) -> None:
    """Twilio calls the status webhook before its API answer reaches the worker: the
    callback is kept with no message, then attached when the send is recorded."""
    inbox_id = twilio_inbox(db, settings, tenant, provider_api.url)
    status_url = api.get(f"/v1/inboxes/{inbox_id}").json()["webhooks"]["status"]
    conv = start(api, inbox_id)
    sid = "SM" + "7" * 32
    early: list[httpx.Response] = []

    def call_back() -> None:
        params = {"MessageSid": sid, "MessageStatus": "delivered", "To": "+14155550100"}
        signature = RequestValidator("tok").compute_signature(status_url, params)
        early.append(
            api.post(
                status_url.removeprefix(settings.public_url),
                content=urlencode(params),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                },
            )
        )

    provider_api.reply("POST", TWILIO_PATH, Reply(201, twilio_ok(sid).body, before=call_back))
    msg = send(api, conv, "See you at 7.").json()
    # the callback runs inside the send: a busy machine must not time the send out
    patient = settings.model_copy(update={"delivery_timeout_seconds": 30})
    with client_for(patient) as client:
        worker = Deliverer(db, patient, client)
        try:
            assert worker.run_once() == 1
        finally:
            worker.close()

    assert [r.status_code for r in early] == [200], early[0].text if early else None
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["external_message_id"]) == ("delivered", sid)
    assert row["sent_at"] is not None and row["delivered_at"] is not None
    shown = api.get(f"/v1/conversations/{conv}/messages").json()["data"][0]
    assert shown["delivery_status"] == "delivered"
    events = api.get(f"/v1/messages/{msg['id']}/events").json()["data"]
    assert sorted((e["status"], e["provider_status"]) for e in events) == [
        ("delivered", "delivered"),
        ("sent", "accepted"),
    ]
    with db.connect() as conn:
        orphans = conn.scalar(
            sa.select(sa.func.count())
            .select_from(MessageStatusEvent)
            .where(MessageStatusEvent.message_id.is_(None))
        )
        told = conn.execute(
            sa.select(Event.data).where(
                Event.tenant_id == tenant.tenant_id, Event.type == "message.status_updated"
            )
        ).scalars()
        statuses_told = sorted(d["status"] for d in told if d["message_id"] == msg["id"])
    assert orphans == 0
    assert statuses_told == ["delivered", "sent"]


def test_5xx_is_retried_with_backoff_then_sent(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    provider_api.reply("POST", TWILIO_PATH, Reply(503, {"code": 20503, "message": "down"}))
    provider_api.reply("POST", TWILIO_PATH, twilio_ok("SM" + "2" * 32))
    msg = send(api, conv, "Retry me").json()

    assert worker.run_once() == 1
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["attempts"], row["error_code"]) == ("queued", 1, "20503")
    assert row["next_attempt_at"] > row["updated_at"]
    rounds(worker, lambda: delivery(db, tenant, msg["id"])["status"] == "sent")
    assert len(posts(provider_api, TWILIO_PATH)) == 2
    statuses = [e["status"] for e in api.get(f"/v1/messages/{msg['id']}/events").json()["data"]]
    assert statuses == ["queued", "sent"]


def test_4xx_fails_at_once_with_the_providers_error(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    provider_api.reply(
        "POST",
        TWILIO_PATH,
        Reply(400, {"code": 21211, "message": "The 'To' number is not a valid phone number."}),
    )
    msg = send(api, conv, "Never arrives").json()
    worker.run_once()
    time.sleep(0.05)
    assert worker.run_once() == 0
    assert len(provider_api.requests) == 1
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["error_code"]) == ("failed", "21211")
    assert "not a valid phone number" in row["error"]
    shown = api.get(f"/v1/conversations/{conv}/messages").json()["data"][0]
    assert shown["delivery_status"] == "failed"
    assert "not a valid phone number" in shown["delivery_error"]
    (event,) = api.get(f"/v1/messages/{msg['id']}/events").json()["data"]
    assert (event["status"], event["error_code"]) == ("failed", "21211")


def test_retries_stop_at_the_max_attempts_with_the_last_error(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    provider_api.default = Reply(500, {"code": 20500, "message": "Internal Server Error"})
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    msg = send(api, conv, "Doomed").json()
    rounds(worker, lambda: delivery(db, tenant, msg["id"])["status"] == "failed")
    row = delivery(db, tenant, msg["id"])
    assert (row["attempts"], row["error_code"]) == (settings.delivery_max_attempts, "20500")
    assert len(posts(provider_api, TWILIO_PATH)) == settings.delivery_max_attempts


def test_refused_connections_are_retried(
    api: TestClient, db: Database, settings: Settings, tenant: TenantKey, worker: Deliverer
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, closed_port_url()))
    msg = send(api, conv, "Anyone there?").json()
    worker.run_once()
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert "could not reach" in row["error"]


def test_a_timed_out_send_is_looked_up_not_sent_again(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    """Twilio got the message but answered too late: the retry finds it instead of sending."""
    sid = "SM" + "3" * 32
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    provider_api.reply("POST", TWILIO_PATH, Reply(201, {"sid": sid}, delay=2.5))
    listed = {
        "sid": sid,
        "body": "Slow but sure",
        "to": "+14155550100",
        "from": "+14155550199",
        "date_created": "Wed, 25 Nov 2099 10:00:00 +0000",
        "status": "sent",
    }
    provider_api.reply("GET", TWILIO_PATH, Reply(200, {"messages": [listed]}))
    msg = send(api, conv, "Slow but sure").json()

    worker.run_once()
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["attempts"]) == ("pending", 1)  # uncertain: check first
    rounds(worker, lambda: delivery(db, tenant, msg["id"])["status"] == "sent")
    assert len(posts(provider_api, TWILIO_PATH)) == 1
    (lookup,) = [r for r in provider_api.requests if r.method == "GET"]
    assert "To=%2B14155550100" in lookup.path and "From=%2B14155550199" in lookup.path
    assert delivery(db, tenant, msg["id"])["external_message_id"] == sid


def test_a_crashed_claim_is_checked_with_twilio_and_sent_once(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    """A worker claimed the message and died before calling Twilio: the lookup finds nothing,
    so the next worker sends it (once)."""
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    provider_api.reply("GET", TWILIO_PATH, Reply(200, {"messages": []}))
    provider_api.reply("POST", TWILIO_PATH, twilio_ok("SM" + "4" * 32))
    msg = send(api, conv, "After the crash").json()
    (dead,) = deliveries.claim(db, limit=5, lease=timedelta(0))  # claimed, never settled
    assert not dead.interrupted
    assert worker.run_once() == 1
    assert [r.method for r in provider_api.requests] == ["GET", "POST"]
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["attempts"]) == ("sent", 2)


# -- WhatsApp --------------------------------------------------------------------------


def meta_inbox(db: Database, settings: Settings, tenant: TenantKey, base: str) -> str:
    view = inboxes.create(
        db,
        settings,
        tenant.tenant_id,
        {
            "provider": "meta",
            "address": PHONE_ID,
            "credentials": {"access_token": "EAAG", "app_secret": "s", "verify_token": "v"},
            "config": {"api_base_url": base},
        },
    )
    return str(view.id)


def test_whatsapp_outside_the_window_takes_only_a_template(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    conv = start(api, meta_inbox(db, settings, tenant, provider_api.url))
    closed = send(api, conv, "Hello there")
    assert closed.status_code == 409, closed.text
    assert closed.json()["error"]["code"] == "window_closed"
    assert "24-hour" in closed.json()["error"]["message"]
    assert api.get(f"/v1/conversations/{conv}").json()["message_count"] == 0

    template = {"name": "order_update", "language": "en_US"}
    r = send(api, conv, "", message_type="template", channel_data={"template": template})
    assert r.status_code == 201, r.text
    inbound = api.post(
        f"/v1/conversations/{conv}/messages", json={"role": "user", "content": "Where is it?"}
    )
    assert inbound.status_code == 201
    assert send(api, conv, "On its way!").status_code == 201

    provider_api.default = Reply(
        200, {"contacts": [{"wa_id": "14155550100"}], "messages": [{"id": "wamid.X"}]}
    )
    rounds(worker, lambda: len(provider_api.requests) == 2 and not worker.run_once())
    bodies = sorted((r.json() for r in posts(provider_api, WHATSAPP_PATH)), key=lambda b: b["type"])
    assert [b["type"] for b in bodies] == ["template", "text"]
    assert bodies[0]["template"]["name"] == "order_update"
    assert bodies[1]["text"]["body"] == "On its way!"
    assert bodies[1]["to"] == "14155550100"


def test_whatsapp_crash_mid_send_is_never_sent_blindly(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
    worker: Deliverer,
) -> None:
    """Meta has no lookup: a claim left by a dead worker ends failed with outcome_unknown."""
    conv = start(api, meta_inbox(db, settings, tenant, provider_api.url))
    api.post(f"/v1/conversations/{conv}/messages", json={"role": "user", "content": "Hi"})
    msg = send(api, conv, "Hello!").json()
    deliveries.claim(db, limit=5, lease=timedelta(0))
    worker.run_once()
    assert provider_api.requests == []
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["error_code"]) == ("failed", "outcome_unknown")


# -- email through a real SMTP server ----------------------------------------------------


def test_email_goes_out_by_smtp_threaded_to_the_last_inbound_mail(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    smtp_server: tuple[Recorder, int],  # noqa: F811 - the fixture
    worker: Deliverer,
) -> None:
    recorder, port = smtp_server
    view = inboxes.create(
        db,
        settings,
        tenant.tenant_id,
        {
            "provider": "smtp",
            "address": "support@shop.example",
            "credentials": {"host": "127.0.0.1", "port": port},
            "config": {"from_name": "Shop Support", "timeout": 5},
        },
    )
    r = api.post(
        "/v1/conversations",
        json={
            "contact": {"name": "Ann", "email": "ann@example.com"},
            "inbox_id": str(view.id),
            "title": "Delivery date",
        },
    )
    conv = r.json()["id"]
    api.post(
        f"/v1/conversations/{conv}/messages",
        json={
            "role": "user",
            "content": "Can you deliver Tuesday?",
            "external_message_id": "<q-2@mail.example.com>",
            "channel_data": {
                "message_id": "<q-2@mail.example.com>",
                "references": ["<root-1@shop.example>"],
            },
        },
    )
    msg = send(api, conv, "Tuesday it is.").json()
    assert worker.run_once() == 1
    (envelope,) = recorder.envelopes
    assert envelope.rcpt_tos == ["ann@example.com"]
    mail = message_from_bytes(envelope.original_content, policy=policy.default)
    assert mail["In-Reply-To"] == "<q-2@mail.example.com>"
    assert mail["References"] == "<root-1@shop.example> <q-2@mail.example.com>"
    assert mail["Subject"] == "Re: Delivery date"
    assert mail["Message-ID"] == f"<{msg['id']}@shop.example>"
    assert "Tuesday it is." in mail.get_body().get_content()
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["external_message_id"]) == ("sent", mail["Message-ID"])


def test_smtp_permanent_rejection_fails_with_the_servers_reply(
    api: TestClient,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    smtp_server: tuple[Recorder, int],  # noqa: F811 - the fixture
    worker: Deliverer,
) -> None:
    recorder, port = smtp_server
    recorder.reject = "550 5.1.1 No such user"
    view = inboxes.create(
        db,
        settings,
        tenant.tenant_id,
        {
            "provider": "smtp",
            "address": "support@shop.example",
            "credentials": {"host": "127.0.0.1", "port": port},
        },
    )
    conv = start(api, str(view.id), name="Nobody", email="nobody@example.com")
    msg = send(api, conv, "Hello?").json()
    worker.run_once()
    row = delivery(db, tenant, msg["id"])
    assert (row["status"], row["error_code"]) == ("failed", "550")
    assert "No such user" in row["error"]


# -- the queue and the events ------------------------------------------------------------


def test_concurrent_claims_never_share_a_delivery(
    api: TestClient, db: Database, settings: Settings, tenant: TenantKey, provider_api: ProviderAPI
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    messages = [{"role": "assistant", "content": f"m{i}", "send": True} for i in range(40)]
    r = api.post(f"/v1/conversations/{conv}/messages/batch", json={"messages": messages})
    assert r.status_code == 201
    claimed: list[list[deliveries.Claim]] = []
    barrier = threading.Barrier(4)

    def take() -> None:
        barrier.wait()
        for _ in range(5):
            claimed.append(deliveries.claim(db, limit=3, lease=timedelta(minutes=1)))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [c.message_id for batch in claimed for c in batch]
    assert len(ids) == len(set(ids)) == 40


def test_events_are_the_tenants_own(
    api: TestClient,
    app: Any,
    db: Database,
    settings: Settings,
    tenant: TenantKey,
    provider_api: ProviderAPI,
) -> None:
    conv = start(api, twilio_inbox(db, settings, tenant, provider_api.url))
    msg = send(api, conv, "Mine").json()
    assert api.get(f"/v1/messages/{msg['id']}/events").json() == {"data": []}
    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as stranger:
        r = stranger.get(f"/v1/messages/{msg['id']}/events")
    assert r.status_code == 404
    assert api.get(f"/v1/messages/{uuid.uuid4()}/events").status_code == 404


def test_backoff_doubles_and_jitters() -> None:
    waits = [backoff(n, 5, rng=lambda: 1.0).total_seconds() for n in (1, 2, 3, 4)]
    assert waits == [5, 10, 20, 40]
    assert backoff(1, 5, rng=lambda: 0.0).total_seconds() == 2.5
    assert backoff(30, 5, rng=lambda: 1.0) == timedelta(hours=1)
