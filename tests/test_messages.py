"""Messages over HTTP: seq order, occurred_at, idempotent replays, status moves, pages, batches.

Every test runs on SQLite and on PostgreSQL (the ``backend`` fixture behind ``api``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import make_tenant
from threadline.domain.enums import Channel, InboxMode
from threadline.store import Database
from threadline.store.models import Inbox

Json = dict[str, Any]

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _messages_url(conv: Json) -> str:
    return f"/v1/conversations/{conv['id']}/messages"


def _post(api: TestClient, conv: Json, body: Json, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post(_messages_url(conv), json=body, headers=headers)


def _all(api: TestClient, conv: Json) -> list[Json]:
    r = api.get(_messages_url(conv), params={"limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _conv(api: TestClient, conv: Json) -> Json:
    r = api.get(f"/v1/conversations/{conv['id']}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _new_conversation(api: TestClient, **fields: Any) -> Json:
    body = {"contact": {"name": "Grace", "phone": "+14155550111"}} | fields
    r = api.post("/v1/conversations", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _make_inbox(db: Database, tenant_id: uuid.UUID) -> uuid.UUID:
    """An SMS inbox, written straight to the store (the inbox API is not built yet)."""
    inbox = Inbox(
        provider="twilio",
        tenant_id=tenant_id,
        channel=Channel.SMS,
        name="Main line",
        address=f"+1415555{uuid.uuid4().int % 10_000:04d}",
        mode=InboxMode.AUTO,
        settings={},
        is_active=True,
    )
    with db.write() as s:
        s.add(inbox)
    return inbox.id


def _assert_error(r: Any, status: int) -> Json:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


# --- seq and the conversation's counters ---------------------------------------------------


def test_seqs_count_up_and_counters_move(api: TestClient, conversation: Json) -> None:
    before = _conv(api, conversation)
    assert before["message_count"] == 0
    assert before["last_message_at"] is None

    seqs = []
    for i in range(5):
        r = _post(
            api, conversation, {"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"}
        )
        assert r.status_code == 201, r.text
        seqs.append(r.json()["seq"])
    assert seqs == [1, 2, 3, 4, 5]

    after = _conv(api, conversation)
    assert after["message_count"] == 5
    last = _all(api, conversation)[-1]
    assert _ts(after["last_message_at"]) == _ts(last["occurred_at"])
    assert _ts(after["updated_at"]) >= _ts(last["created_at"])
    assert _ts(after["updated_at"]) > _ts(before["updated_at"])


def test_seqs_are_per_conversation(api: TestClient, conversation: Json) -> None:
    other = _new_conversation(api)
    for conv in (conversation, other, conversation, other, conversation):
        assert _post(api, conv, {"role": "user", "content": "x"}).status_code == 201
    assert [m["seq"] for m in _all(api, conversation)] == [1, 2, 3]
    assert [m["seq"] for m in _all(api, other)] == [1, 2]


def test_occurred_at_is_kept_beside_created_at(api: TestClient, conversation: Json) -> None:
    sent = datetime(2024, 12, 24, 18, 30, 5, 123456, tzinfo=UTC)
    r = _post(
        api, conversation, {"role": "user", "content": "old", "occurred_at": sent.isoformat()}
    )
    assert r.status_code == 201, r.text
    m = r.json()
    assert _ts(m["occurred_at"]) == sent
    assert _ts(m["created_at"]) > sent + timedelta(days=300)  # server time, not client time
    assert _ts(_conv(api, conversation)["last_message_at"]) == sent

    # Without occurred_at the message happened when it was stored.
    r = _post(api, conversation, {"role": "user", "content": "now"})
    now = r.json()
    assert _ts(now["occurred_at"]) == _ts(now["created_at"])


def test_last_message_at_never_moves_back(api: TestClient, conversation: Json) -> None:
    _post(api, conversation, {"role": "user", "content": "new", "occurred_at": _at(60)})
    _post(api, conversation, {"role": "user", "content": "late import", "occurred_at": _at(1)})
    assert _ts(_conv(api, conversation)["last_message_at"]) == T0 + timedelta(minutes=60)


def test_batch_takes_seqs_in_occurred_at_order_and_answers_in_request_order(
    api: TestClient, conversation: Json
) -> None:
    assert _post(api, conversation, {"role": "user", "content": "first"}).status_code == 201
    minutes = [30, 10, 50, 20, 40]
    batch = [
        {"role": "user" if i % 2 else "assistant", "content": f"at {m}", "occurred_at": _at(m)}
        for i, m in enumerate(minutes)
    ]
    r = api.post(f"{_messages_url(conversation)}/batch", json={"messages": batch})
    assert r.status_code == 201, r.text
    answer = r.json()["data"]

    # The answer follows the request ...
    assert [m["content"] for m in answer] == [b["content"] for b in batch]
    # ... and each message's seq follows its occurred_at, after what was already there.
    seq_of = {m["content"]: m["seq"] for m in answer}
    assert [seq_of[f"at {m}"] for m in sorted(minutes)] == [2, 3, 4, 5, 6]

    stored = _all(api, conversation)
    assert [m["seq"] for m in stored] == [1, 2, 3, 4, 5, 6]
    assert [m["content"] for m in stored[1:]] == [f"at {m}" for m in sorted(minutes)]
    assert {m["id"] for m in stored[1:]} == {m["id"] for m in answer}
    conv = _conv(api, conversation)
    assert conv["message_count"] == 6


def test_batch_with_equal_times_keeps_request_order(api: TestClient, conversation: Json) -> None:
    batch = [{"role": "user", "content": f"m{i}", "occurred_at": _at(5)} for i in range(6)]
    r = api.post(f"{_messages_url(conversation)}/batch", json={"messages": batch})
    assert r.status_code == 201, r.text
    assert [(m["content"], m["seq"]) for m in r.json()["data"]] == [
        (f"m{i}", i + 1) for i in range(6)
    ]


# --- idempotency -----------------------------------------------------------------------------


def test_external_message_id_replay_answers_original_and_stores_nothing(
    api: TestClient, conversation: Json
) -> None:
    body = {"role": "user", "content": "Hi there", "external_message_id": "SM0001"}
    first = _post(api, conversation, body)
    assert first.status_code == 201, first.text
    updated = _conv(api, conversation)["updated_at"]

    again = _post(api, conversation, body)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()

    # Even with a different body, the provider's id is what makes it the same message.
    changed = _post(api, conversation, body | {"content": "Hi there (retry)"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == first.json()["id"]
    assert changed.json()["content"] == "Hi there"

    conv = _conv(api, conversation)
    assert conv["message_count"] == 1
    assert conv["updated_at"] == updated
    assert [m["id"] for m in _all(api, conversation)] == [first.json()["id"]]


def test_external_message_id_is_scoped_to_the_conversation_without_inbox(
    api: TestClient, conversation: Json
) -> None:
    other = _new_conversation(api)
    body = {"role": "user", "content": "hello", "external_message_id": "msg-1"}
    a = _post(api, conversation, body)
    b = _post(api, other, body)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert _conv(api, conversation)["message_count"] == 1
    assert _conv(api, other)["message_count"] == 1


def test_external_message_id_is_scoped_to_the_inbox(
    api: TestClient, db: Database, tenant: Any
) -> None:
    inbox = _make_inbox(db, tenant.tenant_id)
    a = _new_conversation(api, inbox_id=str(inbox))
    b = _new_conversation(api, inbox_id=str(inbox), contact={"name": "Bo", "phone": "+14155550122"})
    free = _new_conversation(api, contact={"name": "Cy", "phone": "+14155550133"})
    body = {"role": "user", "content": "from the provider", "external_message_id": "SMabc"}

    first = _post(api, a, body)
    assert first.status_code == 201, first.text
    # The same provider id on the same inbox is the same message, whichever conversation.
    again = _post(api, b, body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert _conv(api, b)["message_count"] == 0
    assert _all(api, b) == []
    # A conversation outside the inbox has its own id space.
    assert _post(api, free, body).status_code == 201
    assert _conv(api, a)["message_count"] == 1


def test_idempotency_key_replay_answers_original_and_stores_nothing(
    api: TestClient, conversation: Json
) -> None:
    body = {"role": "assistant", "content": "Sure, Friday at 10?"}
    first = _post(api, conversation, body, key="reply-42")
    assert first.status_code == 201, first.text
    events = api.get(f"/v1/conversations/{conversation['id']}/events").json()

    for _ in range(3):
        again = _post(api, conversation, body, key="reply-42")
        assert again.status_code == 200, again.text
        assert again.json() == first.json()

    assert _conv(api, conversation)["message_count"] == 1
    assert [m["id"] for m in _all(api, conversation)] == [first.json()["id"]]
    assert api.get(f"/v1/conversations/{conversation['id']}/events").json() == events

    # A new key is a new message.
    other = _post(api, conversation, body, key="reply-43")
    assert other.status_code == 201
    assert other.json()["seq"] == 2


def test_idempotency_key_reused_with_another_body_is_422(
    api: TestClient, conversation: Json
) -> None:
    assert _post(api, conversation, {"role": "user", "content": "a"}, key="k1").status_code == 201
    r = _post(api, conversation, {"role": "user", "content": "b"}, key="k1")
    err = _assert_error(r, 422)
    assert err["code"] == "idempotency_key_reused"
    # ... including the same body sent to another conversation.
    other = _new_conversation(api)
    err = _assert_error(_post(api, other, {"role": "user", "content": "a"}, key="k1"), 422)
    assert err["code"] == "idempotency_key_reused"
    assert _conv(api, conversation)["message_count"] == 1
    assert _conv(api, other)["message_count"] == 0


def test_idempotency_keys_belong_to_one_tenant(
    api: TestClient, app: Any, db: Database, conversation: Json
) -> None:
    assert (
        _post(api, conversation, {"role": "user", "content": "a"}, key="shared").status_code == 201
    )
    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as api2:
        conv2 = _new_conversation(api2)
        r = _post(api2, conv2, {"role": "user", "content": "a"}, key="shared")
        assert r.status_code == 201, r.text
        assert r.json()["conversation_id"] == conv2["id"]


def test_batch_replay_with_idempotency_key_answers_the_original(
    api: TestClient, conversation: Json
) -> None:
    batch = {
        "messages": [
            {"role": "user", "content": "late", "occurred_at": _at(20)},
            {"role": "assistant", "content": "early", "occurred_at": _at(10)},
            {"role": "user", "content": "no time"},
        ]
    }
    url = f"{_messages_url(conversation)}/batch"
    first = api.post(url, json=batch, headers={"Idempotency-Key": "import-1"})
    assert first.status_code == 201, first.text
    again = api.post(url, json=batch, headers={"Idempotency-Key": "import-1"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert _conv(api, conversation)["message_count"] == 3

    # A batch that also answered a message stored earlier replays that answer too.
    known = {"role": "user", "content": "known", "external_message_id": "ext-9"}
    assert _post(api, conversation, known).status_code == 201
    mixed = {
        "messages": [
            {"role": "user", "content": "b", "occurred_at": _at(50)},
            known,
            {"role": "user", "content": "a", "occurred_at": _at(40), "external_message_id": "x"},
        ]
    }
    first = api.post(url, json=mixed, headers={"Idempotency-Key": "import-2"})
    assert first.status_code == 201, first.text
    assert [(m["content"], m["seq"]) for m in first.json()["data"]] == [
        ("b", 6),
        ("known", 4),
        ("a", 5),
    ]
    again = api.post(url, json=mixed, headers={"Idempotency-Key": "import-2"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert _conv(api, conversation)["message_count"] == 6


def test_batch_skips_messages_already_stored_by_external_id(
    api: TestClient, conversation: Json
) -> None:
    url = f"{_messages_url(conversation)}/batch"
    one = {"role": "user", "content": "one", "external_message_id": "e1", "occurred_at": _at(1)}
    two = {"role": "user", "content": "two", "external_message_id": "e2", "occurred_at": _at(2)}
    assert api.post(url, json={"messages": [one]}).status_code == 201

    r = api.post(url, json={"messages": [two, one]})
    assert r.status_code == 201, r.text
    assert [(m["content"], m["seq"]) for m in r.json()["data"]] == [("two", 2), ("one", 1)]

    r = api.post(url, json={"messages": [one, two]})
    assert r.status_code == 200, r.text
    assert [m["seq"] for m in r.json()["data"]] == [1, 2]
    assert _conv(api, conversation)["message_count"] == 2


# --- status moves ----------------------------------------------------------------------------


def _status_events(api: TestClient, conv: Json) -> list[tuple[str, str]]:
    r = api.get(f"/v1/conversations/{conv['id']}/events")
    assert r.status_code == 200, r.text
    events = r.json()["data"]
    return [(e["data"]["from"], e["data"]["to"]) for e in events if e["type"] == "status_changed"]


def test_messages_move_the_status_and_each_move_is_an_event(
    api: TestClient, conversation: Json
) -> None:
    assert conversation["status"] == "active"
    steps = [
        ({"role": "user", "content": "Do you do kitchens?"}, "needs_reply"),
        ({"role": "assistant", "content": "We do!"}, "waiting"),
        ({"role": "system", "content": "note"}, "waiting"),
        ({"role": "user", "content": "Great, how much?"}, "needs_reply"),
        ({"role": "user", "content": "Also bathrooms?"}, "needs_reply"),
        ({"role": "assistant", "content": "Let me check."}, "waiting"),
    ]
    for body, expected in steps:
        assert _post(api, conversation, body).status_code == 201
        assert _conv(api, conversation)["status"] == expected, body
    assert _status_events(api, conversation) == [
        ("active", "needs_reply"),
        ("needs_reply", "waiting"),
        ("waiting", "needs_reply"),
        ("needs_reply", "waiting"),
    ]


def test_a_replay_moves_no_status(api: TestClient, conversation: Json) -> None:
    user = {"role": "user", "content": "hi", "external_message_id": "u1"}
    assert _post(api, conversation, user).status_code == 201
    assert _post(api, conversation, {"role": "assistant", "content": "hello"}).status_code == 201
    assert _post(api, conversation, user).status_code == 200
    assert _conv(api, conversation)["status"] == "waiting"
    assert len(_status_events(api, conversation)) == 2


def test_escalated_stays_escalated_and_archived_reopens(
    api: TestClient, conversation: Json
) -> None:
    url = f"/v1/conversations/{conversation['id']}"
    assert api.patch(url, json={"status": "escalated"}).status_code == 200
    _post(api, conversation, {"role": "user", "content": "hello?"})
    assert _conv(api, conversation)["status"] == "escalated"

    assert api.patch(url, json={"status": "archived"}).status_code == 200
    _post(api, conversation, {"role": "user", "content": "me again"})
    assert _conv(api, conversation)["status"] == "needs_reply"
    assert _status_events(api, conversation)[-1] == ("archived", "needs_reply")


# --- listing by seq --------------------------------------------------------------------------


@pytest.fixture
def seven(api: TestClient, conversation: Json) -> Json:
    batch = [{"role": "user", "content": f"m{i}", "occurred_at": _at(i)} for i in range(1, 8)]
    r = api.post(f"{_messages_url(conversation)}/batch", json={"messages": batch})
    assert r.status_code == 201, r.text
    return conversation


def _page(api: TestClient, conv: Json, **params: Any) -> tuple[list[int], str | None]:
    r = api.get(_messages_url(conv), params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return [m["seq"] for m in body["data"]], body["next_cursor"]


def test_list_pages_forward_with_cursor(api: TestClient, seven: Json) -> None:
    seqs, cursor = _page(api, seven, limit=3)
    assert seqs == [1, 2, 3] and cursor
    seqs, cursor = _page(api, seven, limit=3, cursor=cursor)
    assert seqs == [4, 5, 6] and cursor
    seqs, cursor = _page(api, seven, limit=3, cursor=cursor)
    assert (seqs, cursor) == ([7], None)
    # An exact fit has no next page.
    assert _page(api, seven, limit=7) == ([1, 2, 3, 4, 5, 6, 7], None)


def test_list_after_and_before_seq(api: TestClient, seven: Json) -> None:
    assert _page(api, seven, after_seq=4)[0] == [5, 6, 7]
    assert _page(api, seven, before_seq=3)[0] == [1, 2]
    assert _page(api, seven, after_seq=2, before_seq=6)[0] == [3, 4, 5]
    assert _page(api, seven, after_seq=7)[0] == []
    assert _page(api, seven, after_seq=0, limit=2)[0] == [1, 2]


def test_list_latest_pages_backward_in_seq_order(api: TestClient, seven: Json) -> None:
    seqs, cursor = _page(api, seven, latest="true", limit=3)
    assert seqs == [5, 6, 7] and cursor
    seqs, cursor = _page(api, seven, limit=3, cursor=cursor)
    assert seqs == [2, 3, 4] and cursor
    seqs, cursor = _page(api, seven, limit=3, cursor=cursor)
    assert (seqs, cursor) == ([1], None)
    assert _page(api, seven, latest="true", before_seq=5, limit=2)[0] == [3, 4]


def test_list_rejects_bad_queries(api: TestClient, seven: Json) -> None:
    assert _assert_error(api.get(_messages_url(seven), params={"cursor": "nope"}), 400)
    _assert_error(api.get(_messages_url(seven), params={"after_seq": -1}), 422)
    _assert_error(api.get(_messages_url(seven), params={"limit": 0}), 422)
    missing = {"id": str(uuid.uuid4())}
    assert _assert_error(api.get(_messages_url(missing)), 404)["code"] == "not_found"


def test_another_tenant_cannot_read_or_write(
    api: TestClient, app: Any, db: Database, seven: Json
) -> None:
    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as api2:
        _assert_error(api2.get(_messages_url(seven)), 404)
        _assert_error(_post(api2, seven, {"role": "user", "content": "intruder"}), 404)
    assert _conv(api, seven)["message_count"] == 7


# --- all or nothing --------------------------------------------------------------------------


def _batch(api: TestClient, conv: Json, messages: list[Json]) -> Any:
    return api.post(f"{_messages_url(conv)}/batch", json={"messages": messages})


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "tool", "content": "result without a call id"},
        {"role": "robot", "content": "unknown role"},
        {"role": "user", "content": "unknown field", "colour": "blue"},
        {"role": "user", "content": "bad time", "occurred_at": "yesterday"},
        {"role": "user", "content": "naive time", "occurred_at": "2025-01-01T10:00:00"},
        {"role": "user", "content": "dup", "external_message_id": "dup-1"},
    ],
    ids=["tool-no-call-id", "unknown-role", "unknown-field", "bad-time", "naive-time", "dup-ext"],
)
def test_batch_is_all_or_nothing(api: TestClient, conversation: Json, bad: Json) -> None:
    good = [
        {"role": "user", "content": "one", "external_message_id": "dup-1"},
        {"role": "assistant", "content": "two"},
    ]
    r = _batch(api, conversation, [*good, bad])
    _assert_error(r, 422)
    conv = _conv(api, conversation)
    assert conv["message_count"] == 0
    assert conv["status"] == "active"
    assert _all(api, conversation) == []
    assert _status_events(api, conversation) == []
    # The good part alone goes through afterwards.
    assert _batch(api, conversation, good).status_code == 201
    assert [m["seq"] for m in _all(api, conversation)] == [1, 2]


def test_parent_message_must_be_the_tenants_own(
    api: TestClient, app: Any, db: Database, conversation: Json
) -> None:
    parent = _post(api, conversation, {"role": "user", "content": "root"}).json()
    reply = {"role": "assistant", "content": "re", "parent_message_id": parent["id"]}
    r = _post(api, conversation, reply)
    assert r.status_code == 201, r.text
    assert r.json()["parent_message_id"] == parent["id"]

    # Unknown parent, last in a batch: refused as input, and nothing of the batch is stored.
    unknown = {"role": "user", "content": "three", "parent_message_id": str(uuid.uuid4())}
    one, two = {"role": "user", "content": "one"}, {"role": "user", "content": "two"}
    err = _assert_error(_batch(api, conversation, [one, two, unknown]), 422)
    assert err["details"]["index"] == 2
    assert _conv(api, conversation)["message_count"] == 2

    # Another tenant's message is no parent either, and the answer does not tell it exists.
    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as api2:
        conv2 = _new_conversation(api2)
        foreign = {"role": "user", "content": "x", "parent_message_id": parent["id"]}
        made_up = foreign | {"parent_message_id": str(uuid.uuid4())}
        a = _assert_error(_post(api2, conv2, foreign), 422)
        b = _assert_error(_post(api2, conv2, made_up), 422)
        assert (a["code"], a["message"]) == (b["code"], b["message"])
        assert _conv(api2, conv2)["message_count"] == 0
    assert [m["seq"] for m in _all(api, conversation)] == [1, 2]


def test_empty_and_oversized_batches_are_refused(api: TestClient, conversation: Json) -> None:
    _assert_error(_batch(api, conversation, []), 422)
    too_long = {"role": "user", "content": "x" * 40_000}
    _assert_error(_batch(api, conversation, [{"role": "user", "content": "ok"}, too_long]), 413)
    assert _conv(api, conversation)["message_count"] == 0


def test_a_key_first_used_on_a_pure_replay_is_still_remembered(api, conversation) -> None:
    path = f"/v1/conversations/{conversation['id']}/messages"
    first = api.post(path, json={"role": "user", "content": "hi", "external_message_id": "e1"})
    assert first.status_code == 201
    body = {"role": "user", "content": "hi", "external_message_id": "e1"}
    replay = api.post(path, json=body, headers={"Idempotency-Key": "k-pure"})
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    again = api.post(path, json=body, headers={"Idempotency-Key": "k-pure"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = {"role": "user", "content": "something else", "external_message_id": "e2"}
    reused = api.post(path, json=other, headers={"Idempotency-Key": "k-pure"})
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    listed = api.get(path).json()["data"]
    assert [m["external_message_id"] for m in listed] == ["e1"]
