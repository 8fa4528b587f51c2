"""Conversations over HTTP on both backends: create, list by last activity with filters and
cursors, detail with messages and events, and status changes through the state machine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import make_tenant
from threadline.domain.enums import ConversationStatus
from threadline.domain.status import ALLOWED
from threadline.store import Database
from threadline.store.models import Conversation

STATUSES = [s.value for s in ConversationStatus]


def _conv(api: TestClient, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/conversations", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _contact(api: TestClient, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/contacts", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _say(api: TestClient, cid: str, content: str = "hi", role: str = "user") -> dict[str, Any]:
    r = api.post(f"/v1/conversations/{cid}/messages", json={"role": role, "content": content})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _patch(api: TestClient, cid: str, **body: Any) -> Any:
    return api.patch(f"/v1/conversations/{cid}", json=body)


def _ids(api: TestClient, **params: Any) -> list[str]:
    r = api.get("/v1/conversations", params=params)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["data"]]


def _events(api: TestClient, cid: str) -> list[dict[str, Any]]:
    r = api.get(f"/v1/conversations/{cid}", params={"include": "events"})
    assert r.status_code == 200, r.text
    return r.json()["events"]  # type: ignore[no-any-return]


def _error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if code is not None:
        assert err["code"] == code, err
    return err  # type: ignore[no-any-return]


# --- create -----------------------------------------------------------------------------------


def test_create_for_an_existing_contact(api: TestClient) -> None:
    contact = _contact(api, name="Ada", phone="+14155550100")
    conv = _conv(api, contact_id=contact["id"], title="Kitchen remodel", metadata={"src": "web"})
    uuid.UUID(conv["id"])
    assert conv["contact_id"] == contact["id"]
    assert conv["status"] == "active"
    assert conv["channel"] == "api"
    assert conv["message_count"] == 0
    assert conv["last_message_at"] is None
    assert conv["title"] == "Kitchen remodel"
    assert conv["metadata"] == {"src": "web"}
    got = api.get(f"/v1/conversations/{conv['id']}")
    assert got.status_code == 200
    assert got.json()["messages"] is None and got.json()["events"] is None
    assert {k: v for k, v in got.json().items() if k in conv} == conv


def test_inline_contact_matches_an_existing_contact_by_phone(api: TestClient) -> None:
    ada = _contact(api, name="Ada", phone="+14155550100")
    conv = _conv(api, contact={"name": "Ada L.", "phone": "+1 415 555 0100"})
    assert conv["contact_id"] == ada["id"]
    contacts = api.get("/v1/contacts").json()["data"]
    assert [c["id"] for c in contacts] == [ada["id"]]
    assert contacts[0]["name"] == "Ada"  # matching does not overwrite the stored contact


def test_inline_contact_matches_by_email_when_the_phone_is_unknown(api: TestClient) -> None:
    ada = _contact(api, name="Ada", email="ada@example.com")
    conv = _conv(api, contact={"phone": "+14155550177", "email": "ADA@example.com"})
    assert conv["contact_id"] == ada["id"]


def test_inline_contact_is_created_when_nothing_matches(api: TestClient) -> None:
    _contact(api, name="Grace", phone="+14155550111")
    conv = _conv(api, contact={"name": "Ada", "phone": "+1 (415) 555-0100"}, channel="sms")
    assert conv["channel"] == "sms"
    contact = api.get(f"/v1/contacts/{conv['contact_id']}").json()
    assert contact["name"] == "Ada"
    assert contact["phone"] == "+14155550100"
    # the second conversation with the same person reuses the contact
    again = _conv(api, contact={"phone": "+14155550100"})
    assert again["contact_id"] == conv["contact_id"]
    assert len(api.get("/v1/contacts").json()["data"]) == 2


def test_inline_contact_with_an_invalid_phone_answers_422_and_stores_nothing(
    api: TestClient,
) -> None:
    r = api.post("/v1/conversations", json={"contact": {"name": "Ada", "phone": "12"}})
    _error(r, 422)
    assert api.get("/v1/contacts").json()["data"] == []
    assert _ids(api) == []


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "pigeon"},
        {"contact_id": "not-a-uuid"},
        {"title": "x" * 501},
        {"metadata": "not an object"},
        {"contact": {"nickname": "x"}},
        {"surprise": True},
    ],
)
def test_invalid_create_bodies_answer_422(api: TestClient, body: dict[str, Any]) -> None:
    _error(api.post("/v1/conversations", json=body), 422, "validation_error")
    assert _ids(api) == []


def test_contact_id_and_contact_together_answer_422(api: TestClient) -> None:
    ada = _contact(api, name="Ada", phone="+14155550100")
    body = {"contact_id": ada["id"], "contact": {"phone": "+14155550111"}}
    err = _error(api.post("/v1/conversations", json=body), 422)
    assert "contact_id" in err["message"]
    assert _ids(api) == []
    assert len(api.get("/v1/contacts").json()["data"]) == 1


def test_unknown_or_foreign_contact_id_answers_404(api: TestClient, app: Any, db: Database) -> None:
    _error(api.post("/v1/conversations", json={"contact_id": str(uuid.uuid4())}), 404, "not_found")
    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as c:
        theirs = c.post("/v1/contacts", json={"name": "Theirs"}).json()
    _error(api.post("/v1/conversations", json={"contact_id": theirs["id"]}), 404, "not_found")
    assert _ids(api) == []


def test_another_tenants_conversation_is_not_found(
    api: TestClient, app: Any, db: Database, conversation: dict[str, Any]
) -> None:
    other = make_tenant(db)
    cid = conversation["id"]
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as c:
        _error(c.get(f"/v1/conversations/{cid}"), 404)
        _error(c.patch(f"/v1/conversations/{cid}", json={"status": "archived"}), 404)
        assert c.get("/v1/conversations").json()["data"] == []
    assert api.get(f"/v1/conversations/{cid}").json()["status"] == "active"


# --- list -------------------------------------------------------------------------------------


def test_list_is_newest_activity_first_and_a_new_message_moves_to_the_top(
    api: TestClient,
) -> None:
    a, b, c = (_conv(api, title=t)["id"] for t in "abc")
    assert _ids(api) == [c, b, a]
    _say(api, a)
    assert _ids(api) == [a, c, b]
    _say(api, b, "reply", role="assistant")
    assert _ids(api) == [b, a, c]
    listed = api.get("/v1/conversations").json()["data"]
    assert listed[0]["message_count"] == 1
    assert listed[0]["last_message_at"] is not None


def test_list_filters(api: TestClient) -> None:
    ada = _contact(api, name="Ada", phone="+14155550100")
    grace = _contact(api, name="Grace", phone="+14155550111")
    a_sms = _conv(api, contact_id=ada["id"], channel="sms")["id"]
    a_api = _conv(api, contact_id=ada["id"])["id"]
    g_mail = _conv(api, contact_id=grace["id"], channel="email")["id"]
    assert _patch(api, g_mail, status="escalated").status_code == 200
    _say(api, a_sms)  # -> needs_reply

    assert _ids(api, contact_id=ada["id"]) == [a_sms, a_api]
    assert _ids(api, contact_id=grace["id"]) == [g_mail]
    assert _ids(api, channel="sms") == [a_sms]
    assert _ids(api, channel="email") == [g_mail]
    assert _ids(api, channel="whatsapp") == []
    assert _ids(api, status="needs_reply") == [a_sms]
    assert _ids(api, status="escalated") == [g_mail]
    assert _ids(api, status="active") == [a_api]
    assert _ids(api, status="active", channel="sms") == []
    assert _ids(api, status="needs_reply", contact_id=ada["id"], channel="sms") == [a_sms]
    assert _ids(api, contact_id=str(uuid.uuid4())) == []


@pytest.mark.parametrize(
    "params", [{"status": "closed"}, {"channel": "fax"}, {"contact_id": "nope"}, {"limit": 0}]
)
def test_bad_list_parameters_answer_422(api: TestClient, params: dict[str, Any]) -> None:
    _error(api.get("/v1/conversations", params=params), 422)


def _walk(api: TestClient, limit: int, **params: Any) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(100):
        query = params | {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = api.get("/v1/conversations", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        sizes.append(len(page["data"]))
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, sizes
    raise AssertionError("the cursor never ran out")


def test_cursor_pagination_returns_each_conversation_exactly_once(api: TestClient) -> None:
    created = [_conv(api, title=f"c{i}")["id"] for i in range(25)]
    seen, sizes = _walk(api, 10)
    assert sizes == [10, 10, 5]
    assert len(set(seen)) == 25
    assert seen == list(reversed(created))


def test_cursor_pagination_with_equal_activity_times(api: TestClient, db: Database) -> None:
    created = [_conv(api, title=f"c{i}")["id"] for i in range(25)]
    # many conversations touched in the same microsecond (a batch import, a coarse clock)
    same = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with db.write() as s:
        s.execute(
            sa.update(Conversation)
            .where(Conversation.id.in_([uuid.UUID(c) for c in created[5:20]]))
            .values(last_activity_at=same)
        )
    full = _ids(api, limit=200)
    seen, sizes = _walk(api, 10)
    assert sizes == [10, 10, 5]
    assert seen == full
    assert sorted(seen) == sorted(created)


def test_cursor_pagination_keeps_the_filter(api: TestClient) -> None:
    ada = _contact(api, name="Ada")
    mine = []
    for i in range(12):
        mine.append(_conv(api, contact_id=ada["id"])["id"])
        _conv(api, title=f"other {i}")
    seen, sizes = _walk(api, 5, contact_id=ada["id"])
    assert sizes == [5, 5, 2]
    assert seen == list(reversed(mine))


def test_a_cursor_we_did_not_issue_answers_400(api: TestClient) -> None:
    _error(api.get("/v1/conversations", params={"cursor": "bm9wZQ"}), 400, "invalid_cursor")


# --- detail -----------------------------------------------------------------------------------


def test_detail_includes_messages_and_events(api: TestClient) -> None:
    cid = _conv(api, contact={"name": "Ada", "phone": "+14155550100"})["id"]
    _say(api, cid, "first")
    _say(api, cid, "second", role="assistant")
    _say(api, cid, "third")

    r = api.get(f"/v1/conversations/{cid}?include=messages&include=events")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["message_count"] == 3
    assert detail["status"] == "needs_reply"
    assert [(m["seq"], m["content"]) for m in detail["messages"]] == [
        (1, "first"),
        (2, "second"),
        (3, "third"),
    ]
    types = [e["type"] for e in detail["events"]]
    assert types[0] == "created"
    changes = [e["data"] for e in detail["events"] if e["type"] == "status_changed"]
    assert [(c["from"], c["to"]) for c in changes] == [
        ("active", "needs_reply"),
        ("needs_reply", "waiting"),
        ("waiting", "needs_reply"),
    ]

    only_messages = api.get(f"/v1/conversations/{cid}", params={"include": "messages"}).json()
    assert len(only_messages["messages"]) == 3
    assert only_messages["events"] is None
    plain = api.get(f"/v1/conversations/{cid}").json()
    assert plain["messages"] is None and plain["events"] is None


def test_detail_rejects_an_unknown_include(api: TestClient, conversation: dict[str, Any]) -> None:
    r = api.get(f"/v1/conversations/{conversation['id']}", params={"include": "secrets"})
    _error(r, 422)


def test_unknown_conversation_answers_404(api: TestClient) -> None:
    _error(api.get(f"/v1/conversations/{uuid.uuid4()}"), 404, "not_found")
    _error(_patch(api, str(uuid.uuid4()), title="x"), 404, "not_found")


# --- status through the state machine ---------------------------------------------------------


def test_allowed_status_change_answers_200_and_writes_an_event(
    api: TestClient, conversation: dict[str, Any]
) -> None:
    cid = conversation["id"]
    r = _patch(api, cid, status="escalated")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "escalated"
    assert api.get(f"/v1/conversations/{cid}").json()["status"] == "escalated"
    changes = [e for e in _events(api, cid) if e["type"] == "status_changed"]
    assert len(changes) == 1
    assert changes[0]["data"]["from"] == "active"
    assert changes[0]["data"]["to"] == "escalated"

    assert _patch(api, cid, status="archived").json()["status"] == "archived"
    assert _patch(api, cid, status="active").json()["status"] == "active"
    tos = [e["data"]["to"] for e in _events(api, cid) if e["type"] == "status_changed"]
    assert tos == ["escalated", "archived", "active"]


def test_forbidden_status_change_answers_409_and_changes_nothing(
    api: TestClient, conversation: dict[str, Any]
) -> None:
    cid = conversation["id"]
    assert _patch(api, cid, status="archived").status_code == 200
    before = api.get(f"/v1/conversations/{cid}").json()
    events_before = _events(api, cid)

    err = _error(_patch(api, cid, status="waiting", title="changed"), 409, "invalid_transition")
    assert "archived" in err["message"] and "waiting" in err["message"]
    assert err["details"]["allowed"] == ["active"]

    after = api.get(f"/v1/conversations/{cid}").json()
    assert after == before  # the title in the same request was not applied either
    assert _events(api, cid) == events_before


def test_every_transition_answers_as_the_state_machine_says(api: TestClient) -> None:
    for current in ConversationStatus:
        for target in ConversationStatus:
            cid = _conv(api)["id"]
            if current != ConversationStatus.ACTIVE:
                assert _patch(api, cid, status=current.value).status_code == 200
            r = _patch(api, cid, status=target.value)
            allowed = target == current or target in ALLOWED[current]
            assert r.status_code == (200 if allowed else 409), (current, target, r.text)
            expected = target if allowed else current
            assert api.get(f"/v1/conversations/{cid}").json()["status"] == expected.value
    # the rule the API documents
    assert ConversationStatus.WAITING not in ALLOWED[ConversationStatus.ARCHIVED]


def test_setting_the_same_status_is_a_no_op(api: TestClient, conversation: dict[str, Any]) -> None:
    cid = conversation["id"]
    r = _patch(api, cid, status="active")
    assert r.status_code == 200
    assert [e["type"] for e in _events(api, cid)] == ["created"]


def test_invalid_status_answers_422(api: TestClient, conversation: dict[str, Any]) -> None:
    _error(_patch(api, conversation["id"], status="closed"), 422, "validation_error")


def test_a_message_reopens_an_archived_conversation(
    api: TestClient, conversation: dict[str, Any]
) -> None:
    cid = conversation["id"]
    assert _patch(api, cid, status="archived").status_code == 200
    _say(api, cid, "are you still there?")
    assert api.get(f"/v1/conversations/{cid}").json()["status"] == "needs_reply"
    assert _ids(api, status="needs_reply") == [cid]
    assert _ids(api, status="archived") == []


# --- title and metadata -----------------------------------------------------------------------


def test_title_and_metadata_updates(api: TestClient) -> None:
    conv = _conv(api, title="Kitchen", metadata={"a": 1})
    cid = conv["id"]
    r = _patch(api, cid, title="Kitchen remodel")
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Kitchen remodel"
    assert r.json()["metadata"] == {"a": 1}
    assert r.json()["status"] == "active"
    assert r.json()["updated_at"] > conv["updated_at"]

    r = _patch(api, cid, metadata={"b": {"nested": [1, 2]}})
    assert r.json()["metadata"] == {"b": {"nested": [1, 2]}}
    assert r.json()["title"] == "Kitchen remodel"

    r = _patch(api, cid, title=None)
    assert r.json()["title"] is None

    stored = api.get(f"/v1/conversations/{cid}").json()
    assert stored["title"] is None
    assert stored["metadata"] == {"b": {"nested": [1, 2]}}
    # no status change, no status event
    assert [e["type"] for e in _events(api, cid)] == ["created"]


@pytest.mark.parametrize(
    "body", [{"title": "x" * 501}, {"metadata": [1]}, {"message_count": 5}, {"id": "x"}]
)
def test_invalid_updates_answer_422(
    api: TestClient, conversation: dict[str, Any], body: dict[str, Any]
) -> None:
    _error(_patch(api, conversation["id"], **body), 422, "validation_error")
    stored = api.get(f"/v1/conversations/{conversation['id']}").json()
    assert stored["message_count"] == 0
    assert stored["updated_at"] == conversation["updated_at"]
