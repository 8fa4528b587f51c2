"""Outgoing webhooks: endpoints over the API, deliveries signed per Standard Webhooks (checked
with the ``standardwebhooks`` verifier by a receiver on loopback), retries after a 5xx,
redelivery, the delivery log, and another tenant's endpoints out of reach."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from conftest import make_tenant
from threadline.api.app import create_app
from threadline.jobs.webhooks_out import WebhookSender, client_for
from threadline.settings import Settings
from threadline.store import Database

Json = dict[str, Any]


@dataclass
class Receiver:
    """An HTTP endpoint on loopback that keeps every request and answers from a script."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # next statuses; then 204

    def next_status(self) -> int:
        return self.answers.pop(0) if self.answers else 204


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            rec.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = rec.next_status()
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"no")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        embeddings="none",
        webhook_backoff_seconds=0.01,
        webhook_max_attempts=3,
        webhook_timeout_seconds=2,
    )


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    """The API without background loops: each test runs the sender's rounds itself."""
    return create_app(settings, db, background=())


@pytest.fixture
def sender(db: Database, settings: Settings) -> Iterator[WebhookSender]:
    from datetime import timedelta

    client = client_for(settings)
    s = WebhookSender(db, settings, client, settle=timedelta(0))
    yield s
    s.close()
    client.close()


def rounds(sender: WebhookSender, until: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the sender did not get there in time"
        if not sender.run_once():
            time.sleep(0.02)


def endpoint(api: TestClient, url: str, **extra: Any) -> Json:
    r = api.post("/v1/webhook-endpoints", json={"url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def verified(secret: str, headers: dict[str, str], body: bytes) -> Json:
    return Webhook(secret).verify(body, headers)  # type: ignore[no-any-return]


def test_events_are_posted_signed_with_the_message_included(
    api: TestClient, conversation: Json, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(api, receiver.url, events=["message.created"], description="crm")
    assert ep["secret"].startswith("whsec_") and ep["events"] == ["message.created"]
    url = f"/v1/conversations/{conversation['id']}/messages"
    msg = api.post(url, json={"role": "user", "content": "hello there"}).json()

    rounds(sender, lambda: len(receiver.received) == 1)
    headers, body = receiver.received[0]
    event = verified(ep["secret"], headers, body)
    assert event["type"] == "message.created"
    assert event["data"]["message"] == msg  # as the API returns it
    assert event["data"]["conversation_id"] == conversation["id"]
    assert headers["webhook-id"] and headers["content-type"] == "application/json"
    # the conversation's status change was not asked for
    time.sleep(0.05)
    sender.run_once()
    assert len(receiver.received) == 1
    # a wrong secret fails verification
    with pytest.raises(Exception, match="signature"):
        verified("whsec_" + "A" * 43 + "=", headers, body)

    log = api.get(f"/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"]
    assert [(d["status"], d["attempts"], d["status_code"]) for d in log] == [("delivered", 1, 204)]
    # the secret is shown once
    listed = api.get("/v1/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed] == [ep["id"]] and "secret" not in listed[0]
    assert "secret" not in api.get(f"/v1/webhook-endpoints/{ep['id']}").json()


def test_a_500_is_retried_with_the_same_webhook_id_then_delivered(
    api: TestClient, conversation: Json, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(api, receiver.url, events=["conversation.escalated"])
    receiver.answers = [500, 503]
    api.patch(f"/v1/conversations/{conversation['id']}", json={"status": "escalated"})

    rounds(sender, lambda: len(receiver.received) == 3)
    ids = {h["webhook-id"] for h, _ in receiver.received}
    assert len(ids) == 1
    for headers, body in receiver.received:
        event = verified(ep["secret"], headers, body)
        assert event["data"]["conversation"]["status"] == "escalated"
    [d] = api.get(f"/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"]
    assert (d["status"], d["attempts"], d["status_code"], d["error"]) == (
        "delivered",
        3,
        204,
        None,
    )


def test_retries_end_in_failed_and_redelivery_sends_again(
    api: TestClient, conversation: Json, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(api, receiver.url, events=["conversation.escalated"])
    receiver.answers = [500, 500, 500]
    api.patch(f"/v1/conversations/{conversation['id']}", json={"status": "escalated"})
    log_url = f"/v1/webhook-endpoints/{ep['id']}/deliveries"

    def settled() -> bool:
        return api.get(log_url).json()["data"][0]["status"] == "failed"

    rounds(sender, lambda: len(receiver.received) == 3 and settled())
    [d] = api.get(log_url).json()["data"]
    assert (d["attempts"], d["status_code"], d["next_attempt_at"]) == (3, 500, None)
    assert d["error"].startswith("HTTP 500")

    r = api.post(f"/v1/webhook-deliveries/{d['id']}/redeliver")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    rounds(sender, lambda: len(receiver.received) == 4)
    rounds(sender, lambda: api.get(log_url).json()["data"][0]["status"] == "delivered")
    assert receiver.received[3][0]["webhook-id"] == receiver.received[0][0]["webhook-id"]


def test_a_4xx_fails_at_once_and_a_dead_endpoint_is_retried(
    api: TestClient, conversation: Json, receiver: Receiver, sender: WebhookSender
) -> None:
    ep = endpoint(api, receiver.url, events=["conversation.escalated"])
    dead = endpoint(api, "http://127.0.0.1:9/nothing", events=["conversation.escalated"])
    receiver.answers = [410]
    api.patch(f"/v1/conversations/{conversation['id']}", json={"status": "escalated"})

    def status(e: Json) -> str | None:
        log = api.get(f"/v1/webhook-endpoints/{e['id']}/deliveries").json()["data"]
        return log[0]["status"] if log else None

    rounds(sender, lambda: status(ep) == "failed" and status(dead) == "failed")
    assert len(receiver.received) == 1
    [d] = api.get(f"/v1/webhook-endpoints/{dead['id']}/deliveries").json()["data"]
    assert d["attempts"] == 3 and d["status_code"] is None and "connect" in d["error"]


def test_each_event_is_delivered_once_per_endpoint_and_deleted_endpoints_get_nothing(
    api: TestClient, conversation: Json, receiver: Receiver, sender: WebhookSender
) -> None:
    every = endpoint(api, receiver.url)
    gone = endpoint(api, receiver.url)
    assert every["events"] is None
    assert api.delete(f"/v1/webhook-endpoints/{gone['id']}").status_code == 204
    url = f"/v1/conversations/{conversation['id']}/messages"
    for i in range(3):
        api.post(url, json={"role": "user", "content": f"m{i}"})
    rounds(sender, lambda: len(receiver.received) == 4)  # 3 messages + 1 status change
    for _ in range(3):
        sender.run_once()
    assert len(receiver.received) == 4
    types = [json.loads(b)["type"] for _, b in receiver.received]
    assert sorted(types) == ["conversation.status_changed"] + ["message.created"] * 3
    assert api.get(f"/v1/webhook-endpoints/{gone['id']}").status_code == 404


def test_another_tenants_endpoints_and_deliveries_are_not_found(
    app: Any,
    db: Database,
    api: TestClient,
    conversation: Json,
    receiver: Receiver,
    sender: WebhookSender,
) -> None:
    ep = endpoint(api, receiver.url, events=["conversation.escalated"])
    api.patch(f"/v1/conversations/{conversation['id']}", json={"status": "escalated"})
    rounds(sender, lambda: len(receiver.received) == 1)
    [d] = api.get(f"/v1/webhook-endpoints/{ep['id']}/deliveries").json()["data"]

    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as them:
        assert them.get("/v1/webhook-endpoints").json()["data"] == []
        for r in (
            them.get(f"/v1/webhook-endpoints/{ep['id']}"),
            them.get(f"/v1/webhook-endpoints/{ep['id']}/deliveries"),
            them.delete(f"/v1/webhook-endpoints/{ep['id']}"),
            them.post(f"/v1/webhook-deliveries/{d['id']}/redeliver"),
        ):
            assert r.status_code == 404, r.text
            assert r.json()["error"]["code"] == "not_found"
        # their own events never reach this tenant's endpoint
        conv = them.post("/v1/conversations", json={"channel": "api"}).json()
        them.patch(f"/v1/conversations/{conv['id']}", json={"status": "escalated"})
    for _ in range(3):
        sender.run_once()
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/hook"},
        {"url": "javascript:alert(1)"},
        {"url": "/relative/path"},
        {"url": "http://"},
        {"url": "https://example.com/" + "a" * 2100},
        {"url": "https://example.com/h", "events": ["message.exploded"]},
        {"url": "https://example.com/h", "events": []},
        {"url": "https://example.com/h", "secret": "mine"},
        {},
    ],
)
def test_bad_endpoints_are_refused(api: TestClient, body: Json) -> None:
    r = api.post("/v1/webhook-endpoints", json=body)
    assert r.status_code == 422, r.text
    assert api.get("/v1/webhook-endpoints").json()["data"] == []


def test_bad_ids_and_cursors(api: TestClient) -> None:
    assert api.get("/v1/webhook-endpoints/not-an-id").status_code == 422
    ep = endpoint(api, "https://example.com/h")
    r = api.get(f"/v1/webhook-endpoints/{ep['id']}/deliveries", params={"cursor": "nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
    r = api.get("/v1/webhook-endpoints", params={"limit": 5})
    assert r.status_code == 422
