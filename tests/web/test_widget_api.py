"""The web-chat widget's public endpoints on both backends: visitor sessions with signed
tokens, sending through ingest, history, the live stream, the per-inbox CORS allow-list
(preflight included), 403 for another inbox's token or origin, and rate limits."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from conftest import TenantKey, make_tenant
from live import free_port
from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database

SITE = "https://shop.example"
Json = dict[str, Any]


@pytest.fixture
def web(settings: Settings, db: Database, tenant: TenantKey) -> Iterator[TestClient]:
    app = create_app(settings, db, background=())
    with TestClient(app, headers=tenant.headers, raise_server_exceptions=False) as c:
        yield c


def make_inbox(api: TestClient, **config: Any) -> str:
    body = {
        "name": "Website chat",
        "channel": "webchat",
        "provider": "widget",
        "address": f"shop-{uuid.uuid4().hex[:6]}.example",
        "config": {"allowed_origins": [SITE + "/"]} | config,
    }
    r = api.post("/v1/inboxes", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture
def inbox(web: TestClient) -> str:
    return make_inbox(web)


def visitor(web: TestClient, inbox: str, origin: str = SITE, **body: Any) -> Json:
    r = web.post(f"/widget/{inbox}/sessions", json=body, headers={"Origin": origin})
    assert r.status_code == 201, r.text
    assert r.headers["access-control-allow-origin"] == origin
    return r.json()  # type: ignore[no-any-return]


def say(
    web: TestClient, inbox: str, token: str, text: str, origin: str = SITE, **extra: Any
) -> httpx.Response:
    return web.post(
        f"/widget/{inbox}/messages",
        json={"content": text} | extra,
        headers={"Origin": origin, "Authorization": f"Bearer {token}"},
    )


def history(web: TestClient, inbox: str, token: str, origin: str = SITE) -> httpx.Response:
    return web.get(
        f"/widget/{inbox}/messages",
        headers={"Origin": origin, "Authorization": f"Bearer {token}"},
    )


def test_a_visitor_chats_and_the_messages_land_in_the_inbox(web: TestClient, inbox: str) -> None:
    v = visitor(web, inbox, name="Vera Visitor", email="Vera@Example.com", page=SITE + "/pricing")
    r = say(web, inbox, v["token"], "Do you ship to Norway?", client_id="m1")
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["author"] == "visitor" and sent["content"] == "Do you ship to Norway?"
    assert set(sent) == {"id", "seq", "author", "content", "created_at"}
    # a retry of the same message stores nothing
    again = say(web, inbox, v["token"], "Do you ship to Norway?", client_id="m1")
    assert again.status_code == 200 and again.json()["id"] == sent["id"]

    conv = web.get(f"/v1/conversations/{v['conversation_id']}").json()
    assert conv["inbox_id"] == inbox and conv["channel"] == "webchat"
    assert conv["message_count"] == 1 and conv["status"] == "needs_reply"
    contact = web.get(f"/v1/contacts/{conv['contact_id']}").json()
    assert contact["name"] == "Vera Visitor" and contact["email"] == "vera@example.com"
    listed = web.get("/v1/conversations", params={"inbox_id": inbox}).json()["data"]
    assert [c["id"] for c in listed] == [v["conversation_id"]]

    # replies from the agent or a person show up; system and tool messages never do
    cid = v["conversation_id"]
    for body in (
        {"role": "system", "content": "internal: VIP"},
        {"role": "assistant", "content": "Yes, we do!", "send": True},
        {"role": "assistant", "content": "Shipping takes 3 days.", "sender_type": "human"},
    ):
        assert web.post(f"/v1/conversations/{cid}/messages", json=body).status_code == 201
    page = history(web, inbox, v["token"]).json()
    assert [(m["author"], m["content"]) for m in page["data"]] == [
        ("visitor", "Do you ship to Norway?"),
        ("agent", "Yes, we do!"),
        ("staff", "Shipping takes 3 days."),
    ]
    assert page["last_seq"] == 4


def test_visitors_see_only_their_own_conversation(web: TestClient, inbox: str) -> None:
    a, b = visitor(web, inbox), visitor(web, inbox)
    assert a["conversation_id"] != b["conversation_id"]
    say(web, inbox, a["token"], "from a", client_id="same")
    # the same client id from another visitor is another message, not a replay of a's
    r = say(web, inbox, b["token"], "from b", client_id="same")
    assert r.status_code == 201
    assert [m["content"] for m in history(web, inbox, b["token"]).json()["data"]] == ["from b"]


def test_cors_preflight_answers_the_allowed_origin_only(web: TestClient, inbox: str) -> None:
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    r = web.options(f"/widget/{inbox}/messages", headers={"Origin": SITE} | ask)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == SITE
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "Origin" in r.headers["vary"]
    bad = web.options(f"/widget/{inbox}/messages", headers={"Origin": "https://evil.example"} | ask)
    assert bad.status_code == 403
    assert "access-control-allow-origin" not in bad.headers


def test_origins_and_tokens_that_are_not_allowed_get_403(
    web: TestClient, inbox: str, db: Database, settings: Settings
) -> None:
    v = visitor(web, inbox)
    for origin in ("https://evil.example", "http://shop.example", None):
        headers = {"Origin": origin} if origin else {}
        r = web.post(f"/widget/{inbox}/sessions", json={}, headers=headers)
        assert r.status_code == 403, origin
        assert r.json()["error"]["code"] == "forbidden"
        r = say(web, inbox, v["token"], "hi", origin=origin or "")
        assert r.status_code == 403
    # a token of another inbox (same tenant, and another tenant's) opens nothing here
    other = make_inbox(web)
    elsewhere = visitor(web, other)
    r = say(web, inbox, elsewhere["token"], "hi")
    assert r.status_code == 403 and "another inbox" in r.json()["error"]["message"]
    assert history(web, inbox, elsewhere["token"]).status_code == 403
    stranger = make_tenant(db)
    with TestClient(web.app, headers=stranger.headers) as them:  # type: ignore[arg-type]
        theirs = make_inbox(them)
    r = say(web, inbox, visitor(web, theirs)["token"], "hi")
    assert r.status_code == 403
    # an inbox that lists no origins serves no page
    closed = make_inbox(web, allowed_origins=[])
    r = web.post(f"/widget/{closed}/sessions", json={}, headers={"Origin": SITE})
    assert r.status_code == 403
    # forged, missing and mangled tokens
    for token in (v["token"][:-2] + "xx", "", "not-a-token"):
        r = say(web, inbox, token, "hi")
        assert r.status_code == 401, token
        assert r.headers["access-control-allow-origin"] == SITE  # the widget can read why
    # what the visitor could not send is not stored
    assert web.get(f"/v1/conversations/{v['conversation_id']}").json()["message_count"] == 0


def test_unknown_inboxes_and_other_providers_are_404(web: TestClient) -> None:
    sms = web.post(
        "/v1/inboxes",
        json={
            "channel": "sms",
            "provider": "twilio",
            "address": "+14155550188",
            "credentials": {"account_sid": "AC1", "auth_token": "t"},
            "config": {"allowed_origins": [SITE]},
        },
    ).json()["id"]
    for inbox in (sms, str(uuid.uuid4()), "not-a-uuid"):
        r = web.post(f"/widget/{inbox}/sessions", json={}, headers={"Origin": SITE})
        assert r.status_code == 404, inbox


def test_bad_input_gets_a_clear_4xx(web: TestClient, inbox: str) -> None:
    v = visitor(web, inbox)
    assert say(web, inbox, v["token"], "   ").status_code == 422
    assert say(web, inbox, v["token"], "x" * 4001).status_code == 422
    assert say(web, inbox, v["token"], "hi", client_id="../etc").status_code == 422
    r = web.post(f"/widget/{inbox}/sessions", json={"email": "nope"}, headers={"Origin": SITE})
    assert r.status_code == 422
    r = web.post(f"/widget/{inbox}/sessions", json={"admin": True}, headers={"Origin": SITE})
    assert r.status_code == 422


def test_a_visitor_is_rate_limited(web: TestClient) -> None:
    inbox = make_inbox(web, messages_per_minute=3)
    v, other = visitor(web, inbox), visitor(web, inbox)
    for i in range(3):
        assert say(web, inbox, v["token"], f"m{i}").status_code == 201
    r = say(web, inbox, v["token"], "one too many")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["access-control-allow-origin"] == SITE
    assert say(web, inbox, other["token"], "I am someone else").status_code == 201
    # sessions per address
    codes = [
        web.post(f"/widget/{inbox}/sessions", json={}, headers={"Origin": SITE}).status_code
        for _ in range(12)
    ]
    assert 429 in codes and codes.count(201) <= 10


def test_widget_script_is_served(web: TestClient) -> None:
    r = web.get("/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert "data-inbox" in r.text and "innerHTML = m" not in r.text


# --- the live stream, against a real server --------------------------------------------------


@pytest.fixture
def server(settings: Settings, db: Database, tenant: TenantKey) -> Iterator[str]:
    app = create_app(settings, db, background=())
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _events(response: httpx.Response) -> Iterator[tuple[str, str, str]]:
    kind, data, ident = "message", "", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()
        elif line == "" and data:
            yield kind, data, ident
            kind, data, ident = "message", "", ""


def test_the_stream_brings_new_replies_of_this_conversation_only(
    server: str, tenant: TenantKey
) -> None:
    with httpx.Client(base_url=server, headers=tenant.headers, timeout=10) as api:
        inbox = make_inbox(api)  # type: ignore[arg-type]
        mine, theirs = visitor(api, inbox), visitor(api, inbox)  # type: ignore[arg-type]
        say(api, inbox, mine["token"], "first", client_id="a")  # type: ignore[arg-type]
        url = f"/widget/{inbox}/stream"
        params = {"token": mine["token"], "after_seq": "1"}
        got: list[Json] = []
        with httpx.stream(
            "GET", server + url, params=params, headers={"Origin": SITE}, timeout=15
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["access-control-allow-origin"] == SITE
            events = _events(stream)
            assert next(events)[0] == "ready"
            cid, other = mine["conversation_id"], theirs["conversation_id"]
            api.post(
                f"/v1/conversations/{other}/messages",
                json={"role": "assistant", "content": "not yours"},
            )
            api.post(
                f"/v1/conversations/{cid}/messages",
                json={"role": "tool", "content": "{}", "tool_call_id": "c1"},
            )
            api.post(
                f"/v1/conversations/{cid}/messages",
                json={"role": "assistant", "content": "live reply"},
            )
            started = time.monotonic()
            kind, data, ident = next(events)
            assert time.monotonic() - started < 5
            got.append(json.loads(data))
            assert kind == "message" and ident == str(got[0]["seq"])
        assert [(m["author"], m["content"]) for m in got] == [("agent", "live reply")]
        # resuming with Last-Event-ID replays what came after it
        say(api, inbox, mine["token"], "second", client_id="b")  # type: ignore[arg-type]
        with httpx.stream(
            "GET",
            server + url,
            params=params,
            headers={"Origin": SITE, "Last-Event-ID": "2"},
            timeout=15,
        ) as stream:
            events = _events(stream)
            assert next(events)[0] == "ready"
            contents = [json.loads(next(events)[1])["content"] for _ in range(2)]
        assert contents == ["live reply", "second"]
        # a stream for another inbox's token, or from another origin, is refused
        r = httpx.get(
            server + url,
            params={"token": theirs["token"]},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403
        other_inbox = make_inbox(api)  # type: ignore[arg-type]
        r = httpx.get(
            f"{server}/widget/{other_inbox}/stream",
            params={"token": mine["token"]},
            headers={"Origin": SITE},
        )
        assert r.status_code == 403
