"""One tenant never sees or touches another's data, on both backends.

Two tenants, A and B, hold the same kinds of rows (even the same phone number, external
message id and Idempotency-Key). A is then pointed at B's ids through every id-bearing
``/v1`` operation the app's OpenAPI document lists: each answers 404, exactly as for an id
that does not exist, and nothing of B's changes. Lists, filters and detail includes show A
only A's rows. Every operation refuses a missing, unknown or revoked key with 401.

The operations come from the OpenAPI document, so a new endpoint joins these tests by
itself; a POST or PATCH fails until ``BODIES`` says what to send, and a path parameter until
``_populate`` stores a row for it. Ids in a body (``"{agent_id}"``) are the same tenant's
as those in the path, so a body cannot reach another tenant's rows either.

The app runs without its background loops: they would send webhooks and run replies on
their own, and this file checks what requests alone do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TenantKey, make_tenant
from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database, suggestions, tenants, webhooks_out
from threadline.store.models import Base
from threadline.store.types import utcnow

PHONE = "+14155550100"

#: What every POST and PATCH sends (keyed by method and path template): a valid body, or
#: None for none. A string ``"{name}"`` in a body is replaced by the caller's id of that name.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/contacts"): {"name": "Mallory"},
    ("PATCH", "/v1/contacts/{contact_id}"): {"name": "Mallory", "attributes": {"owned": True}},
    ("POST", "/v1/conversations"): {"contact": {"name": "Mallory"}},
    ("PATCH", "/v1/conversations/{conversation_id}"): {"status": "archived", "title": "mine"},
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"role": "user", "content": "x"},
    ("POST", "/v1/conversations/{conversation_id}/messages/batch"): {
        "messages": [{"role": "user", "content": "x"}]
    },
    ("POST", "/v1/contacts/{contact_id}/merge"): {"from_contact_id": "{duplicate_contact_id}"},
    ("POST", "/v1/contacts/{contact_id}/erase"): None,
    ("POST", "/v1/inboxes"): {
        "provider": "twilio",
        "address": "+14155550177",
        "credentials": {"account_sid": "AC" + "0" * 32, "auth_token": "secret"},
    },
    ("PATCH", "/v1/inboxes/{inbox_id}"): {"name": "mine", "agent_id": "{agent_id}"},
    ("POST", "/v1/agents"): {"name": "Mallory", "system_prompt": "Hi"},
    ("PATCH", "/v1/agents/{agent_id}"): {"name": "mine", "system_prompt": "Mine now"},
    ("POST", "/v1/agents/{agent_id}/preview"): {"conversation_id": "{conversation_id}"},
    ("POST", "/v1/conversations/{conversation_id}/reply"): None,
    ("POST", "/v1/conversations/{conversation_id}/score"): None,
    ("POST", "/v1/suggestions/{suggestion_id}/approve"): {"content": "mine"},
    ("POST", "/v1/suggestions/{suggestion_id}/reject"): {"feedback": "not yours"},
    ("POST", "/v1/webhook-endpoints"): {"url": "https://example.com/hook"},
    ("POST", "/v1/webhook-deliveries/{delivery_id}/redeliver"): None,
}

#: The query of every operation with a required parameter.
QUERIES: dict[tuple[str, str], dict[str, str]] = {("GET", "/v1/search"): {"q": "mine"}}


def _with_ids(body: Any, ids: dict[str, str]) -> Any:
    if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
        return ids[body[1:-1]]
    if isinstance(body, dict):
        return {k: _with_ids(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [_with_ids(v, ids) for v in body]
    return body


def counts(db: Database) -> dict[str, int]:
    with db.read() as s:
        return {
            t.name: s.scalar(sa.select(sa.func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]  # type: ignore[no-any-return]


def operations(app: Any) -> list[tuple[str, str]]:
    """Every ``/v1`` operation of the app, as (method, path template)."""
    ops = [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(ops) >= 13, ops  # contacts, conversations, events, messages at least
    return ops


@dataclass
class Side:
    """One tenant: its client and the ids of its rows."""

    key: TenantKey
    client: TestClient
    ids: dict[str, str] = field(default_factory=dict)
    text: str = ""
    message_ids: list[str] = field(default_factory=list)

    def url(self, template: str, ids: dict[str, str] | None = None) -> str:
        return template.format(**(ids if ids is not None else self.ids))

    def call(self, method: str, template: str, ids: dict[str, str] | None = None) -> httpx.Response:
        assert method in ("GET", "DELETE") or (method, template) in BODIES, (
            f"add a body (or None) for {method} {template} to BODIES"
        )
        body = _with_ids(BODIES.get((method, template)), ids if ids is not None else self.ids)
        query = QUERIES.get((method, template))
        return self.client.request(method, self.url(template, ids), json=body, params=query)

    def snapshot(self) -> dict[str, Any]:
        """Everything this tenant can read about its rows."""
        c, ids = self.client, self.ids
        conv = f"/v1/conversations/{ids['conversation_id']}"
        endpoint = f"/v1/webhook-endpoints/{ids['endpoint_id']}"
        urls = {
            "contact": f"/v1/contacts/{ids['contact_id']}",
            "duplicate": f"/v1/contacts/{ids['duplicate_contact_id']}",
            "export": f"/v1/contacts/{ids['contact_id']}/export",
            "conversation": f"{conv}?include=messages&include=events",
            "messages": f"{conv}/messages",
            "events": f"{conv}/events",
            "message events": f"/v1/messages/{ids['message_id']}/events",
            "actions": f"{conv}/actions",
            "sessions": f"{conv}/sessions",
            "inbox": f"/v1/inboxes/{ids['inbox_id']}",
            "agent": f"/v1/agents/{ids['agent_id']}",
            "suggestion": f"/v1/suggestions/{ids['suggestion_id']}",
            "endpoint": endpoint,
            "deliveries": f"{endpoint}/deliveries",
            "contacts": "/v1/contacts?limit=200",
            "conversations": "/v1/conversations?limit=200",
            "inboxes": "/v1/inboxes",
            "agents": "/v1/agents",
            "suggestions": "/v1/suggestions",
            "endpoints": "/v1/webhook-endpoints",
            "event log": "/v1/events?limit=500",
        }
        answers = {name: c.get(url) for name, url in urls.items()}
        for name, r in answers.items():
            assert r.status_code == 200, f"{name}: {r.status_code} {r.text}"
        snapshot = {name: r.json() for name, r in answers.items()}
        del snapshot["export"]["exported_at"]  # the time of the request, not of a row
        return snapshot


def _populate(db: Database, side: Side, text: str, number: str) -> None:
    """A contact (the same phone in both tenants) and a duplicate of it, a conversation with
    messages and events, an inbox, an agent, a pending suggestion, a webhook endpoint and a
    delivery to it: a row for every path parameter of the API."""
    c = side.client
    contact = c.post("/v1/contacts", json={"name": text, "phone": PHONE, "email": "a@example.com"})
    assert contact.status_code == 201, contact.text
    conv = c.post("/v1/conversations", json={"contact_id": contact.json()["id"], "title": text})
    assert conv.status_code == 201, conv.text
    cid = conv.json()["id"]
    url = f"/v1/conversations/{cid}/messages"
    r = c.post(
        url,
        json={"role": "user", "content": f"{text} 1", "external_message_id": "SM1"},
        headers={"Idempotency-Key": "same-key"},
    )
    assert r.status_code == 201, r.text
    first = r.json()["id"]
    r = c.post(
        f"{url}/batch",
        json={
            "messages": [
                {"role": "assistant", "content": f"{text} 2", "parent_message_id": first},
                {"role": "user", "content": f"{text} 3", "external_message_id": "SM3"},
            ]
        },
    )
    assert r.status_code == 201, r.text
    side.message_ids = [first] + [m["id"] for m in r.json()["data"]]
    duplicate = c.post("/v1/contacts", json={"name": f"{text} again"})
    assert duplicate.status_code == 201, duplicate.text
    inbox = c.post(
        "/v1/inboxes",
        json={
            "name": text,
            "provider": "twilio",
            "address": number,
            "credentials": {"account_sid": "AC" + "1" * 32, "auth_token": f"{text}-token"},
        },
    )
    assert inbox.status_code == 201, inbox.text
    agent = c.post("/v1/agents", json={"name": text, "system_prompt": f"You work for {text}."})
    assert agent.status_code == 201, agent.text
    suggestion = suggestions.create_pending(
        db,
        side.key.tenant_id,
        {
            "conversation_id": uuid.UUID(cid),
            "in_reply_to_message_id": uuid.UUID(side.message_ids[-1]),
            "content": f"{text} draft",
            "model": "gpt-4o-mini",
            "context_used": {"agent_id": agent.json()["id"]},
        },
    )
    endpoint = c.post("/v1/webhook-endpoints", json={"url": f"https://{text}.example.com/hook"})
    assert endpoint.status_code == 201, endpoint.text
    # An event after the endpoint was made, handed to it as a delivery.
    assert c.patch(f"/v1/conversations/{cid}", json={"status": "waiting"}).status_code == 200
    assert webhooks_out.fan_out(db, settle=timedelta(0), now=utcnow() + timedelta(seconds=1))
    deliveries = c.get(f"/v1/webhook-endpoints/{endpoint.json()['id']}/deliveries").json()
    assert deliveries["data"], deliveries
    side.ids = {
        "contact_id": contact.json()["id"],
        "duplicate_contact_id": duplicate.json()["id"],
        "conversation_id": cid,
        "message_id": first,
        "inbox_id": inbox.json()["id"],
        "agent_id": agent.json()["id"],
        "suggestion_id": str(suggestion.id),
        "endpoint_id": endpoint.json()["id"],
        "delivery_id": deliveries["data"][0]["id"],
    }
    side.text = text


@pytest.fixture
def app(settings: Settings, db: Database) -> Any:
    return create_app(settings, db, background=())


@pytest.fixture
def a(api: TestClient, db: Database, tenant: TenantKey) -> Side:
    side = Side(tenant, api)
    _populate(db, side, "alpha", "+14155550101")
    return side


@pytest.fixture
def b(app: Any, db: Database) -> Iterator[Side]:
    key = make_tenant(db)
    with TestClient(app, headers=key.headers, raise_server_exceptions=False) as c:
        side = Side(key, c)
        _populate(db, side, "bravo", "+14155550102")
        yield side


def test_every_id_operation_answers_404_for_another_tenants_ids(
    app: Any, db: Database, a: Side, b: Side
) -> None:
    id_operations = [(m, p) for m, p in operations(app) if "{" in p]
    assert id_operations
    b_before = b.snapshot()
    rows_before = counts(db)
    unknown = {name: str(uuid.uuid4()) for name in b.ids}
    failures = []
    for method, template in id_operations:
        params = [part[1:-1] for part in template.split("/") if part.startswith("{")]
        missing = [p for p in params if p not in b.ids]
        assert not missing, f"no id of tenant B to try for {missing} in {template}"
        foreign = error_of(a.call(method, template, b.ids), 404)
        absent = error_of(a.call(method, template, unknown), 404)
        # Another tenant's id and no id at all are indistinguishable (no existence oracle).
        if (foreign["code"], foreign["message"]) != (absent["code"], absent["message"]):
            failures.append(f"{method} {template}: {foreign} vs {absent}")
    assert not failures, "\n".join(failures)
    assert counts(db) == rows_before, "a request on another tenant's ids changed stored data"
    assert b.snapshot() == b_before


def test_lists_never_include_another_tenants_rows(a: Side, b: Side) -> None:
    for me, other in ((a, b), (b, a)):
        c = me.client

        def walk(url: str, client: TestClient = c) -> list[dict[str, Any]]:
            """Every row of a list, one per page, following next_cursor."""
            rows, cursor = [], None
            while True:
                sep = "&" if "?" in url else "?"
                page = client.get(f"{url}{sep}limit=1" + (f"&cursor={cursor}" if cursor else ""))
                assert page.status_code == 200, page.text
                rows += page.json()["data"]
                cursor = page.json()["next_cursor"]
                if not cursor:
                    return rows

        mine = [me.ids["duplicate_contact_id"], me.ids["contact_id"]]  # newest first
        assert [x["id"] for x in walk("/v1/contacts")] == mine
        assert [x["id"] for x in walk("/v1/conversations")] == [me.ids["conversation_id"]]
        for query in ("status=waiting", "channel=api", f"contact_id={me.ids['contact_id']}"):
            ids = [x["id"] for x in walk(f"/v1/conversations?{query}")]
            assert ids == [me.ids["conversation_id"]], query
        # Filtering by the other tenant's contact finds nothing, rather than their rows.
        r = c.get(f"/v1/conversations?contact_id={other.ids['contact_id']}")
        assert r.status_code == 200 and r.json()["data"] == [], r.text

        conv = f"/v1/conversations/{me.ids['conversation_id']}"
        messages = walk(f"{conv}/messages")
        assert [m["id"] for m in messages] == me.message_ids
        assert {m["conversation_id"] for m in messages} == {me.ids["conversation_id"]}
        latest = c.get(f"{conv}/messages?latest=true").json()["data"]
        assert [m["id"] for m in latest] == me.message_ids
        detail = c.get(f"{conv}?include=messages&include=events").json()
        assert [m["id"] for m in detail["messages"]] == me.message_ids
        events = c.get(f"{conv}/events").json()["data"]
        assert detail["events"] == events and len(events) >= 2  # created, status changed
        text = str(c.get(f"{conv}?include=messages&include=events").json())
        assert "bravo" not in text if me is a else "alpha" not in text

        # The other resources' lists, and the tenant-wide feeds.
        for url, name in (
            ("/v1/inboxes", "inbox_id"),
            ("/v1/agents", "agent_id"),
            ("/v1/suggestions", "suggestion_id"),
            ("/v1/webhook-endpoints", "endpoint_id"),
            (f"/v1/webhook-endpoints/{me.ids['endpoint_id']}/deliveries", "delivery_id"),
        ):
            r = c.get(url)
            assert r.status_code == 200, r.text
            assert [x["id"] for x in r.json()["data"]] == [me.ids[name]], url
        # Suggestions filtered by the other tenant's conversation: as for one that does not exist.
        foreign = c.get(f"/v1/suggestions?conversation_id={other.ids['conversation_id']}")
        absent = c.get(f"/v1/suggestions?conversation_id={uuid.uuid4()}")
        assert error_of(foreign, 404)["message"] == error_of(absent, 404)["message"]
        feed = c.get("/v1/events?limit=500").json()["data"]
        assert feed and {e["conversation_id"] for e in feed} <= {me.ids["conversation_id"], None}
        assert other.ids["contact_id"] not in str(feed)
        for text in (me.text, other.text):
            r = c.get("/v1/search", params={"q": text, "mode": "keyword"})
            assert r.status_code == 200, r.text
            hits = {h["conversation_id"] for h in r.json()["data"]}
            assert hits == ({me.ids["conversation_id"]} if text == me.text else set()), text
        r = c.get("/v1/search", params={"q": other.text, "contact_id": other.ids["contact_id"]})
        assert r.status_code == 200 and r.json()["data"] == [], r.text
        r = c.get("/v1/analytics/agents")
        assert r.status_code == 200, r.text
        assert other.ids["agent_id"] not in r.text


def test_references_to_another_tenants_rows_are_refused(db: Database, a: Side, b: Side) -> None:
    before = counts(db)
    r = a.client.post("/v1/conversations", json={"contact_id": b.ids["contact_id"]})
    assert error_of(r, 404)["code"] == "not_found"
    url = f"/v1/conversations/{a.ids['conversation_id']}/messages"
    body = {"role": "assistant", "content": "re", "parent_message_id": b.message_ids[0]}
    error_of(a.client.post(url, json=body), 422)
    error_of(a.client.post(f"{url}/batch", json={"messages": [body]}), 422)
    assert counts(db) == before
    # The same reference to A's own message is fine.
    body["parent_message_id"] = a.message_ids[0]
    assert a.client.post(url, json=body).status_code == 201


def test_addresses_external_ids_and_idempotency_keys_are_per_tenant(a: Side, b: Side) -> None:
    # Both tenants hold a contact with the same phone (the fixtures made them): a contact
    # looked up by phone is always the caller's own.
    for me in (a, b):
        r = me.client.post("/v1/conversations", json={"contact": {"phone": PHONE}})
        assert r.status_code == 201, r.text
        assert r.json()["contact_id"] == me.ids["contact_id"]
    # The same external id or Idempotency-Key in another tenant is a new message, never a
    # replay answering the other tenant's message.
    for me in (a, b):
        url = f"/v1/conversations/{me.ids['conversation_id']}/messages"
        replay = me.client.post(
            url,
            json={"role": "user", "content": f"{me.text} 1", "external_message_id": "SM1"},
            headers={"Idempotency-Key": "same-key"},
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["id"] == me.message_ids[0]
        fresh = me.client.post(url, json={"role": "user", "external_message_id": "SM9"})
        assert fresh.status_code == 201, fresh.text
        assert fresh.json()["conversation_id"] == me.ids["conversation_id"]
    a_url = f"/v1/conversations/{a.ids['conversation_id']}/messages"
    b_url = f"/v1/conversations/{b.ids['conversation_id']}/messages"
    key = {"Idempotency-Key": "shared-later"}
    first = a.client.post(a_url, json={"role": "user", "content": "for A only"}, headers=key)
    assert first.status_code == 201, first.text
    second = b.client.post(b_url, json={"role": "user", "content": "for A only"}, headers=key)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["conversation_id"] == b.ids["conversation_id"]


@pytest.fixture
def bad_keys(a: Side) -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "unknown": {"Authorization": "Bearer tl_" + "0" * 43},
        "malformed": {"Authorization": "Bearer " + a.key.token[3:]},
        "wrong scheme": {"Authorization": "Token " + a.key.token},
    }


def test_every_operation_refuses_a_missing_or_unknown_key(
    app: Any, db: Database, a: Side, bad_keys: dict[str, dict[str, str]]
) -> None:
    before = counts(db)
    failures = []
    with TestClient(app, raise_server_exceptions=False) as anonymous:
        stranger = Side(a.key, anonymous, a.ids)
        for method, template in operations(app):
            for name, headers in bad_keys.items():
                anonymous.headers.clear()
                anonymous.headers.update(headers)
                r = stranger.call(method, template)
                if r.status_code != 401 or r.headers.get("www-authenticate") != "Bearer":
                    failures.append(f"{method} {template} with a {name} key: {r.status_code}")
    assert not failures, "\n".join(failures)
    assert counts(db) == before


def test_a_revoked_key_answers_401_everywhere(app: Any, db: Database, a: Side, b: Side) -> None:
    _, spare_token = tenants.create_api_key(db, a.key.tenant_id, "spare")
    key, token = tenants.create_api_key(db, a.key.tenant_id, "to revoke")
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        revoked = Side(a.key, c, a.ids)
        assert revoked.call("GET", "/v1/conversations/{conversation_id}").status_code == 200
        tenants.revoke_api_key(db, a.key.tenant_id, key.id)
        before = counts(db)
        for method, template in operations(app):
            error = error_of(revoked.call(method, template), 401)
            assert error["code"] == "unauthenticated"
        assert counts(db) == before
        # The tenant's other keys, and other tenants, carry on.
        c.headers["Authorization"] = f"Bearer {spare_token}"
        assert c.get("/v1/conversations").json()["data"][0]["id"] == a.ids["conversation_id"]
    assert b.client.get("/v1/conversations").status_code == 200
