"""Writers racing on one conversation: seqs stay gap-free and unique, replays store once.

The store tests call ``threadline.store.messages.append`` from many threads sharing one
``Database`` (its connection pool), the HTTP tests go through the app; both run on SQLite
and on PostgreSQL. Every thread waits on a barrier so the writes really overlap.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi.testclient import TestClient

from threadline.domain import status as state_machine
from threadline.domain.enums import Channel, ConversationStatus, Direction, InboxMode, Role
from threadline.domain.errors import IdempotencyMismatch
from threadline.store import Database, conversations, messages
from threadline.store.models import Conversation, ConversationEvent, Inbox, Message

T = TypeVar("T")
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def race(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0) ... work(n - 1)`` on ``n`` threads released together; re-raise errors."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(run, i) for i in range(n)]
        return [f.result(timeout=240) for f in futures]


def new_conversation(db: Database, tenant_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    return conversations.create(db, tenant_id, fields).id


def stored(db: Database, conversation_id: uuid.UUID) -> list[Any]:
    with db.read() as s:
        q = (
            sa.select(Message.seq, Message.content, Message.role, Message.occurred_at)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.seq)
        )
        return list(s.execute(q))


def counters(db: Database, conversation_id: uuid.UUID) -> Any:
    with db.read() as s:
        q = sa.select(
            Conversation.message_count,
            Conversation.last_message_at,
            Conversation.status,
            Conversation.updated_at,
        ).where(Conversation.id == conversation_id)
        return s.execute(q).one()


def status_events(db: Database, conversation_id: uuid.UUID) -> list[tuple[str, str]]:
    with db.read() as s:
        q = sa.select(ConversationEvent.data).where(
            ConversationEvent.conversation_id == conversation_id,
            ConversationEvent.type == "status_changed",
        )
        return [(d["from"], d["to"]) for d in s.scalars(q)]


def expected_moves(roles: list[Role]) -> tuple[ConversationStatus, Counter[tuple[str, str]]]:
    """Replay the state machine over messages in seq order, one append per message."""
    status, moves = ConversationStatus.ACTIVE, Counter[tuple[str, str]]()
    for role in roles:
        direction = Direction.INBOUND if role == Role.USER else Direction.OUTBOUND
        after = state_machine.after_message(status, direction, role)
        if after != status:
            moves[(status.value, after.value)] += 1
        status = after
    return status, moves


# --- the headline: 8 writers x 250 messages into one conversation ----------------------------

WRITERS, PER_WRITER = 8, 250


def test_eight_writers_get_seqs_1_to_2000(db: Database, tenant: Any) -> None:
    conv_id = new_conversation(db, tenant.tenant_id)

    def writer(w: int) -> list[int]:
        seqs = []
        for i in range(PER_WRITER):
            item = {
                "role": Role.USER if (w + i) % 3 else Role.ASSISTANT,
                "content": f"w{w}-{i}",
                "occurred_at": T0 + timedelta(seconds=w * PER_WRITER + i),
            }
            result = messages.append(db, tenant.tenant_id, conv_id, [item])
            assert result.created and result.stored == 1
            seqs.append(result.messages[0]["seq"])
        return seqs

    answered = race(WRITERS, writer)
    total = WRITERS * PER_WRITER

    # What each writer was told: unique, and increasing in the order it wrote.
    flat = [seq for seqs in answered for seq in seqs]
    assert sorted(flat) == list(range(1, total + 1))
    for seqs in answered:
        assert seqs == sorted(seqs)

    # What is stored: exactly 1..2000, each message once, with what its writer was told.
    rows = stored(db, conv_id)
    assert [r.seq for r in rows] == list(range(1, total + 1))
    told = {f"w{w}-{i}": seqs[i] for w, seqs in enumerate(answered) for i in range(PER_WRITER)}
    assert {r.content: r.seq for r in rows} == told

    # The counters moved with every insert, in the same transaction.
    conv = counters(db, conv_id)
    assert conv.message_count == total
    assert conv.last_message_at == max(r.occurred_at for r in rows)

    # Each status change is one event, in step with the messages in seq order.
    final, moves = expected_moves([Role(r.role) for r in rows])
    assert conv.status == final
    assert Counter(status_events(db, conv_id)) == moves


def test_writers_on_two_conversations_do_not_share_seqs(db: Database, tenant: Any) -> None:
    a, b = new_conversation(db, tenant.tenant_id), new_conversation(db, tenant.tenant_id)

    def writer(w: int) -> None:
        for i in range(40):
            target = a if (w + i) % 2 else b
            messages.append(db, tenant.tenant_id, target, [{"role": "user", "content": f"{w}-{i}"}])

    race(6, writer)
    for conv_id in (a, b):
        assert [r.seq for r in stored(db, conv_id)] == list(range(1, 121))
        assert counters(db, conv_id).message_count == 120


def test_concurrent_batches_each_take_one_contiguous_block(db: Database, tenant: Any) -> None:
    conv_id = new_conversation(db, tenant.tenant_id)
    minutes = [7, 3, 9, 1, 5, 8, 2, 6, 4, 0]

    def writer(w: int) -> list[list[int]]:
        blocks = []
        for b in range(5):
            items = [
                {
                    "role": "user",
                    "content": f"{w}/{b}/{m}",
                    "occurred_at": T0 + timedelta(minutes=m),
                }
                for m in minutes
            ]
            result = messages.append(db, tenant.tenant_id, conv_id, items)
            assert [r["content"] for r in result.messages] == [it["content"] for it in items]
            blocks.append([r["seq"] for r in result.messages])
        return blocks

    answered = race(8, writer)
    for blocks in answered:
        for seqs in blocks:
            # request order -> seq follows occurred_at inside one unbroken block
            by_time = [seqs[minutes.index(m)] for m in sorted(minutes)]
            assert by_time == list(range(by_time[0], by_time[0] + len(minutes)))
    rows = stored(db, conv_id)
    assert [r.seq for r in rows] == list(range(1, 401))
    assert counters(db, conv_id).message_count == 400


# --- replays racing each other ---------------------------------------------------------------


def test_concurrent_idempotency_key_stores_once(db: Database, tenant: Any) -> None:
    conv_id = new_conversation(db, tenant.tenant_id)
    item = {"role": "assistant", "content": "Your table is booked."}

    results = race(
        8, lambda _: messages.append(db, tenant.tenant_id, conv_id, [item], idempotency_key="k")
    )

    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert len({r.messages[0]["id"] for r in results}) == 1
    assert [r.seq for r in stored(db, conv_id)] == [1]
    assert counters(db, conv_id).message_count == 1
    assert len(status_events(db, conv_id)) == 1

    # The same key with other content is refused, also from the store.
    other = {"role": "assistant", "content": "Something else."}
    try:
        messages.append(db, tenant.tenant_id, conv_id, [other], idempotency_key="k")
    except IdempotencyMismatch:
        pass
    else:
        raise AssertionError("a reused Idempotency-Key with another message was accepted")
    assert counters(db, conv_id).message_count == 1


def test_concurrent_external_id_in_one_conversation_stores_once(db: Database, tenant: Any) -> None:
    conv_id = new_conversation(db, tenant.tenant_id)
    item = {"role": "user", "content": "hi", "external_message_id": "wamid.1"}

    results = race(8, lambda _: messages.append(db, tenant.tenant_id, conv_id, [item]))

    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert len({r.messages[0]["id"] for r in results}) == 1
    assert counters(db, conv_id).message_count == 1


def test_concurrent_external_id_across_one_inbox_stores_once(db: Database, tenant: Any) -> None:
    """Two conversations of one inbox: no shared row lock, so the unique index decides."""
    inbox = Inbox(
        provider="twilio",
        tenant_id=tenant.tenant_id,
        channel=Channel.SMS,
        name="Line",
        address="+14155550199",
        mode=InboxMode.AUTO,
        settings={},
    )
    with db.write() as s:
        s.add(inbox)
    convs = [new_conversation(db, tenant.tenant_id, inbox_id=inbox.id) for _ in range(2)]

    def count(ext: str) -> int:
        with db.read() as s:
            q = sa.select(sa.func.count()).where(Message.external_message_id == ext)
            return s.scalar(q) or 0

    for round_ in range(5):  # several rounds: the window for the race is short
        ext = f"SMdup{round_}"

        def send(i: int, ext: str = ext) -> messages.Appended:
            item = {"role": "user", "content": f"retry {i}", "external_message_id": ext}
            return messages.append(db, tenant.tenant_id, convs[i % 2], [item])

        results = race(8, send)
        assert sum(r.created for r in results) == 1, f"{ext} stored more than once"
        assert len({r.messages[0]["id"] for r in results}) == 1
        assert count(ext) == 1
    assert sum(counters(db, c).message_count for c in convs) == 5


# --- the same over HTTP ----------------------------------------------------------------------


def test_http_writers_get_gap_free_seqs(api: TestClient, conversation: dict[str, Any]) -> None:
    url = f"/v1/conversations/{conversation['id']}/messages"

    def writer(w: int) -> list[int]:
        seqs = []
        for i in range(25):
            r = api.post(url, json={"role": "user", "content": f"{w}-{i}"})
            assert r.status_code == 201, r.text
            seqs.append(r.json()["seq"])
        return seqs

    answered = race(4, writer)
    assert sorted(s for seqs in answered for s in seqs) == list(range(1, 101))
    r = api.get(url, params={"limit": 500})
    assert [m["seq"] for m in r.json()["data"]] == list(range(1, 101))
    assert api.get(f"/v1/conversations/{conversation['id']}").json()["message_count"] == 100


def test_http_concurrent_idempotency_key_stores_once(
    api: TestClient, conversation: dict[str, Any]
) -> None:
    url = f"/v1/conversations/{conversation['id']}/messages"
    body = {"role": "user", "content": "Is Friday OK?"}
    headers = {"Idempotency-Key": "client-retry-7"}

    responses = race(8, lambda _: api.post(url, json=body, headers=headers))

    assert sorted(r.status_code for r in responses) == [200] * 7 + [201], [
        r.text for r in responses
    ]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = api.get(url).json()["data"]
    assert [m["seq"] for m in listed] == [1]
    assert api.get(f"/v1/conversations/{conversation['id']}").json()["message_count"] == 1

    # Racing a *different* body under the same key: all refused, nothing stored.
    other = race(
        4, lambda i: api.post(url, json={"role": "user", "content": f"x{i}"}, headers=headers)
    )
    assert [r.status_code for r in other] == [422] * 4
    assert {r.json()["error"]["code"] for r in other} == {"idempotency_key_reused"}
    assert api.get(f"/v1/conversations/{conversation['id']}").json()["message_count"] == 1
