"""The tenant event log and GET /v1/events: written with the change, in order, per tenant,
as a page or a live stream."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import make_tenant
from live import LiveServer
from threadline.store import Database, conversations, events, messages

Json = dict[str, Any]


def _page(api: TestClient, **params: Any) -> list[Json]:
    r = api.get("/v1/events", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def test_messages_and_status_moves_are_logged_in_order(api: TestClient, conversation: Json) -> None:
    url = f"/v1/conversations/{conversation['id']}/messages"
    first = api.post(url, json={"role": "user", "content": "hi"}).json()
    second = api.post(url, json={"role": "assistant", "content": "hello"}).json()
    api.patch(f"/v1/conversations/{conversation['id']}", json={"status": "escalated"})

    log = _page(api)
    assert [e["type"] for e in log] == [
        "message.created",
        "conversation.status_changed",  # active -> needs_reply
        "message.created",
        "conversation.status_changed",  # needs_reply -> waiting
        "conversation.status_changed",  # waiting -> escalated
        "conversation.escalated",
    ]
    assert [e["data"]["message_id"] for e in log if e["type"] == "message.created"] == [
        first["id"],
        second["id"],
    ]
    assert {e["conversation_id"] for e in log} == {conversation["id"]}
    assert [e["id"] for e in log] == sorted(e["id"] for e in log)
    # No body ever goes into the log.
    assert "hi" not in json.dumps(log) and "hello" not in json.dumps(log)


def test_a_page_resumes_after_a_cursor_and_filters_by_type(
    api: TestClient, conversation: Json
) -> None:
    url = f"/v1/conversations/{conversation['id']}/messages"
    for i in range(5):
        api.post(url, json={"role": "user", "content": f"m{i}"})
    page = api.get("/v1/events", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["next_cursor"] == page["data"][-1]["id"]
    rest = _page(api, after=page["next_cursor"])
    assert len(page["data"]) + len(rest) == 6  # 5 messages + the first status change
    created = _page(api, types="message.created")
    assert len(created) == 5 and {e["type"] for e in created} == {"message.created"}
    r = api.get("/v1/events", params={"after": "not-an-id"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


def test_a_rolled_back_write_logs_nothing(db: Database, tenant: Any) -> None:
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    bad = [{"role": "user", "content": "a"}, {"role": "tool", "content": "no call id"}]
    with pytest.raises(Exception):  # noqa: B017 - whatever refuses it, nothing may be logged
        messages.append(db, tenant.tenant_id, conv.id, bad)
    assert events.after(db, tenant.tenant_id, None) == []


def test_another_tenant_sees_none_of_it(
    app: Any, db: Database, api: TestClient, conversation: Json
) -> None:
    api.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"role": "user", "content": "x"}
    )
    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as them:
        assert them.get("/v1/events").json()["data"] == []


def test_the_stream_delivers_new_events_live_and_resumes(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    tenant = make_tenant(db)
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    messages.append(db, tenant.tenant_id, conv.id, [{"role": "user", "content": "before"}])
    headers = tenant.headers | {"Accept": "text/event-stream"}
    received: list[tuple[str, Json]] = []
    ready = threading.Event()

    with LiveServer(tmp_path, database_url=db_url, log_level="warning") as server:

        def listen() -> None:
            with httpx.stream("GET", f"{server.base}/v1/events", headers=headers, timeout=30) as r:
                assert r.status_code == 200
                ready.set()
                name = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        received.append((name or "", json.loads(line.split(":", 1)[1])))
                        if len(received) >= 2:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert ready.wait(20)
        time.sleep(0.3)  # the stream starts from now: "before" is not replayed
        url = f"{server.base}/v1/conversations/{conv.id}/messages"
        httpx.post(url, json={"role": "assistant", "content": "live"}, headers=tenant.headers)
        listener.join(20)
        assert [name for name, _ in received] == [
            "message.created",
            "conversation.status_changed",
        ]
        # Resuming after the first event gives the second again (Last-Event-ID).
        first_id = received[0][1]["id"]
        with httpx.stream(
            "GET",
            f"{server.base}/v1/events",
            headers=headers | {"Last-Event-ID": first_id},
            timeout=30,
        ) as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    assert line.split(":", 1)[1].strip() == "conversation.status_changed"
                    break
