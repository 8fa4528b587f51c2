"""Messages: gap-free ordering, idempotent appends, batch import and reads by seq.

A message row is immutable content and identity. What changes after it is stored lives
beside it, one row per message where there is something to say: its delivery
(``message_deliveries``), the model call that wrote it (``model_calls``) and its moderation
(``message_moderation``). Reads join them back, so a message keeps the API's field names
(``delivery_status``, ``model_used``, ``is_flagged`` ...) wherever they are stored.

The write path, in one write transaction (``Database.run_write``: on SQLite several appends
share one transaction and one commit, each in its own savepoint):

1. lock the conversation row (SQLite's write transaction already holds the lock; PostgreSQL
   takes ``FOR UPDATE``);
2. answer a replay from what is stored: the same ``Idempotency-Key`` (its first request's
   messages) or an ``external_message_id`` already stored for the inbox (or, without an inbox,
   for the conversation);
3. give the new messages ``seq = last_seq + 1, + 2 ...`` in ``occurred_at`` order
   (``last_seq`` is kept on its own, so erasing messages never makes a seq repeat);
4. insert them and their delivery, model-call and moderation rows, move the conversation's
   counters and status (with a ``status_changed`` event), and record the idempotency key.

Because step 1 serialises writers per conversation, seqs are unique and gap-free without
retries. Two requests racing on the same idempotency key or external id in *different*
conversations meet a unique index instead; the loser retries once and is answered as a replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from threadline.domain import status as state_machine
from threadline.domain.enums import (
    Channel,
    ConversationStatus,
    Direction,
    EventType,
    MessageType,
    Role,
    SenderType,
)
from threadline.domain.errors import IdempotencyMismatch, InvalidInput, NotFound
from threadline.domain.ids import new_id
from threadline.store import deliveries as outbound
from threadline.store import events as tenant_events
from threadline.store import idempotency
from threadline.store.bulk_insert import BulkInsert
from threadline.store.conversations import status_change_data, tenant_event_types
from threadline.store.database import Database
from threadline.store.models import (
    Conversation,
    ConversationEvent,
    Message,
    MessageDelivery,
    MessageModeration,
    ModelCall,
)
from threadline.store.types import utcnow

T = TypeVar("T")

# A mapped class's table is typed as FromClause; these are the tables themselves.
messages_table = cast(sa.Table, Message.__table__)
deliveries = cast(sa.Table, MessageDelivery.__table__)
model_calls = cast(sa.Table, ModelCall.__table__)
moderation = cast(sa.Table, MessageModeration.__table__)
conversations_table = cast(sa.Table, Conversation.__table__)
events_table = cast(sa.Table, ConversationEvent.__table__)

#: A message's own columns.
MESSAGE_COLUMNS = frozenset(c.key for c in messages_table.columns)
#: API fields stored beside the message, and the column each is stored in.
DELIVERY_FIELDS = {
    "delivery_status": "status",
    "delivery_error": "error",
    "sent_at": "sent_at",
    "delivered_at": "delivered_at",
    "read_at": "read_at",
}
MODEL_FIELDS = {
    "model_used": "model",
    "prompt_used": "prompt",
    "token_usage": "token_usage",
    "cost_usd": "cost_usd",
    "response_time_ms": "response_time_ms",
}
MODERATION_FIELDS = {
    "is_flagged": "is_flagged",
    "flagged_reason": "flagged_reason",
    "quality_score": "quality_score",
}

#: Fields a caller may set; everything else is assigned here.
WRITABLE = (
    (MESSAGE_COLUMNS - {"id", "tenant_id", "conversation_id", "inbox_id", "seq", "created_at"})
    | set(DELIVERY_FIELDS)
    | set(MODEL_FIELDS)
    | set(MODERATION_FIELDS)
)


def _as_text(column: sa.ColumnElement[Any], key: str) -> sa.ColumnElement[Any]:
    # Enum columns are read as their plain string values (``StrEnum`` members compare equal
    # to them): converting every enum column of every row was a third of a page's cost.
    if isinstance(column.type, sa.Enum):
        return sa.type_coerce(column, sa.String()).label(key)
    return column.label(key)


def _joined(table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.tenant_id == messages_table.c.tenant_id,
        table.c.message_id == messages_table.c.id,
    )


_OWN = [_as_text(c, c.key) for c in messages_table.columns if c.key != "external_message_id"]
#: A message as the API shows it: its own columns and what is stored beside it.
SELECT = sa.select(
    *_OWN,
    sa.func.coalesce(messages_table.c.external_message_id, deliveries.c.external_message_id).label(
        "external_message_id"
    ),
    *(_as_text(deliveries.c[col], field) for field, col in DELIVERY_FIELDS.items()),
    *(model_calls.c[col].label(field) for field, col in MODEL_FIELDS.items()),
    sa.func.coalesce(moderation.c.is_flagged, sa.false()).label("is_flagged"),
    moderation.c.flagged_reason.label("flagged_reason"),
    moderation.c.quality_score.label("quality_score"),
).select_from(
    messages_table.outerjoin(deliveries, _joined(deliveries))
    .outerjoin(model_calls, _joined(model_calls))
    .outerjoin(moderation, _joined(moderation))
)


@dataclass(frozen=True)
class Appended:
    """The messages an append answered with, and whether they were stored just now."""

    messages: list[dict[str, Any]]
    created: bool
    channel: Channel
    stored: int = 0


def default_sender(role: Role, direction: Direction) -> SenderType:
    if role == Role.USER:
        return SenderType.CONTACT
    if role in (Role.SYSTEM, Role.TOOL):
        return SenderType.SYSTEM
    return SenderType.AGENT if direction == Direction.OUTBOUND else SenderType.HUMAN


def default_direction(role: Role) -> Direction:
    return Direction.INBOUND if role == Role.USER else Direction.OUTBOUND


#: Writes more rows with newly appended messages, in their transaction (``append``'s ``extra``).
Extra = Callable[[sa.Connection, list[dict[str, Any]]], None]


def append(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    items: Sequence[dict[str, Any]],
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    send: bool | Sequence[bool] = False,
    extra: Extra | None = None,
) -> Appended:
    """Store ``items`` (field values) at the end of a conversation, all or nothing.

    With ``idempotency_key``, a second call with the same key and the same request (by
    ``request_hash``, else by the items themselves) answers the first call's messages and
    stores nothing; the same key with another request or conversation raises
    ``IdempotencyMismatch``.

    ``send`` (for all items, or one flag per item) queues the new messages for delivery
    through the conversation's inbox, in the same transaction (``store/deliveries.py``);
    a replayed message is answered, not queued again.

    ``extra(conn, new)`` writes rows that belong with the new messages (a voice call's
    function calls) in the same transaction, after they are inserted; it gets the new
    messages' fields (``id``, ``seq`` ...) and is not called for a replay. Like any write
    it may run twice, so it must only write to ``conn``.
    """
    check_batch(items)
    flags = [send] * len(items) if isinstance(send, bool) else list(send)
    if len(flags) != len(items):
        raise InvalidInput("send needs one flag per message")
    if idempotency_key is not None and request_hash is None:
        request_hash = idempotency.fingerprint(items)

    def work(conn: sa.Connection) -> Appended:
        return _append(
            conn, tenant_id, conversation_id, items, idempotency_key, request_hash, flags, extra
        )

    return _write_once_more(db, work)


def append_many(
    db: Database,
    tenant_id: uuid.UUID,
    batches: Sequence[tuple[uuid.UUID, Sequence[dict[str, Any]]]],
) -> list[Appended]:
    """``append`` to several conversations in one write transaction, all or nothing: a bulk
    load (an import) pays one commit for many short conversations. Each ``(conversation_id,
    items)`` is appended as ``append`` would (replays by ``external_message_id`` included),
    without idempotency keys or sending; answers one ``Appended`` per batch, in order."""
    for _, items in batches:
        check_batch(items)

    def work(conn: sa.Connection) -> list[Appended]:
        return [_append(conn, tenant_id, cid, items, None, None) for cid, items in batches]

    return _write_once_more(db, work)


def _write_once_more(db: Database, work: Callable[[sa.Connection], T]) -> T:
    """``db.run_write(work)``, run a second time after an IntegrityError (two writers took
    the same external id or seq at once: the second try finds the first one's rows)."""
    for attempt in (1, 2):
        try:
            return db.run_write(work)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def check_batch(items: Sequence[dict[str, Any]]) -> None:
    if not items:
        raise InvalidInput("a batch needs at least one message")
    seen: set[str] = set()
    for i, item in enumerate(items):
        unknown = set(item) - WRITABLE
        if unknown:
            raise InvalidInput("unknown message fields", fields=sorted(unknown), index=i)
        ext = item.get("external_message_id")
        if ext is not None:
            if ext in seen:
                raise InvalidInput(
                    "the same external_message_id appears twice in one batch",
                    external_message_id=ext,
                    index=i,
                )
            seen.add(ext)


_CONVERSATION = sa.select(
    conversations_table.c.id,
    conversations_table.c.inbox_id,
    _as_text(conversations_table.c.channel, "channel"),
    _as_text(conversations_table.c.status, "status"),
    conversations_table.c.message_count,
    conversations_table.c.last_seq,
    conversations_table.c.last_message_at,
).where(
    conversations_table.c.tenant_id == sa.bindparam("t"),
    conversations_table.c.id == sa.bindparam("c"),
)
_INSERT_MESSAGES = BulkInsert(messages_table.insert())
_INSERT_DELIVERIES = BulkInsert(deliveries.insert())
_INSERT_MODEL_CALLS = BulkInsert(model_calls.insert())
_INSERT_MODERATION = BulkInsert(moderation.insert())
_MOVE = (
    conversations_table.update()
    .where(
        conversations_table.c.tenant_id == sa.bindparam("t"),
        conversations_table.c.id == sa.bindparam("c"),
    )
    .values(
        message_count=sa.bindparam("p_count"),
        last_seq=sa.bindparam("p_last_seq"),
        last_message_at=sa.bindparam("p_last_message_at"),
        last_activity_at=sa.bindparam("p_now"),
        updated_at=sa.bindparam("p_now"),
        status=sa.bindparam("p_status"),
    )
)


def _append(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    items: Sequence[dict[str, Any]],
    idempotency_key: str | None,
    request_hash: str | None,
    send: Sequence[bool] = (),
    extra: Extra | None = None,
) -> Appended:
    lock = _CONVERSATION.with_for_update() if conn.dialect.name == "postgresql" else _CONVERSATION
    found = conn.execute(lock, {"t": tenant_id, "c": conversation_id}).mappings().first()
    if found is None:
        raise NotFound("conversation not found", conversation_id=str(conversation_id))
    conv = dict(found)
    channel = Channel(conv["channel"])

    if idempotency_key is not None:
        assert request_hash is not None
        key = idempotency.find(conn, tenant_id, idempotency_key)
        if key is not None:
            if key.request_hash != request_hash or key.conversation_id != conversation_id:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was already used with a different request",
                    idempotency_key=idempotency_key,
                )
            return Appended(_replay(conn, tenant_id, conv, key, items), False, channel)

    existing = _existing_by_external_id(conn, tenant_id, conv, items)

    now = utcnow()
    answer: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    to_send: list[dict[str, Any]] = []
    for item, flag in zip(items, send or [False] * len(items), strict=True):
        ext = item.get("external_message_id")
        if ext in existing:
            answer.append(existing[ext])
        else:
            new.append(_fields(item, tenant_id, conversation_id, conv["inbox_id"], now))
            answer.append(new[-1])
            if flag:
                to_send.append(new[-1])
    if not new:
        # Every item was already stored. The key is still recorded (with an empty seq range),
        # so reusing it later with a different body is refused like any other reuse.
        if idempotency_key is not None:
            assert request_hash is not None
            idempotency.remember(
                conn, tenant_id, conversation_id, idempotency_key, request_hash, 0, 0, now
            )
        return Appended(answer, created=False, channel=channel)
    _check_parents(conn, tenant_id, new)
    outbound.prepare(conn, tenant_id, conv, to_send, now)
    new.sort(key=lambda r: r["occurred_at"])  # stable: equal times keep request order
    for offset, fields in enumerate(new, start=1):
        fields["seq"] = conv["last_seq"] + offset
    _insert(conn, new)
    if extra is not None:
        extra(conn, new)

    old_status = ConversationStatus(conv["status"])
    status = old_status
    for fields in new:
        status = state_machine.after_message(status, fields["direction"], fields["role"])
    newest = max(f["occurred_at"] for f in new)
    last_message_at = conv["last_message_at"]
    conn.execute(
        _MOVE,
        {
            "t": tenant_id,
            "c": conversation_id,
            "p_count": conv["message_count"] + len(new),
            "p_last_seq": conv["last_seq"] + len(new),
            "p_last_message_at": max(newest, last_message_at) if last_message_at else newest,
            "p_now": now,
            "p_status": status,
        },
    )
    log = [
        tenant_events.row(
            tenant_id,
            tenant_events.MESSAGE_CREATED,
            conversation_id=conversation_id,
            data={"message_id": str(f["id"]), "seq": f["seq"], "role": f["role"].value},
            now=now,
        )
        for f in new
    ]
    if status != old_status:
        change = status_change_data(old_status, status, f"{new[-1]['direction']}_message")
        conn.execute(
            events_table.insert(),
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "conversation_id": conversation_id,
                "type": EventType.STATUS_CHANGED,
                "data": change,
                "created_at": now,
            },
        )
        log += [
            tenant_events.row(tenant_id, t, conversation_id=conversation_id, data=change, now=now)
            for t in tenant_event_types(status)
        ]
    tenant_events.record_many(conn, log)
    if idempotency_key is not None:
        assert request_hash is not None
        first, last_ = new[0]["seq"], new[-1]["seq"]
        idempotency.remember(
            conn, tenant_id, conversation_id, idempotency_key, request_hash, first, last_, now
        )
    return Appended(answer, created=True, channel=channel, stored=len(new))


def _replay(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conv: dict[str, Any],
    key: idempotency.StoredKey,
    items: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The first request's answer again, in request order.

    The request is the same one (its fingerprint matched), so its new messages took the
    key's seq range in the order ``_append`` gave them: stably by ``occurred_at``, which
    defaulted to the time they were stored. The other items were answered from messages
    stored earlier under their ``external_message_id``.
    """
    if key.stored_nothing:
        earlier = _existing_by_external_id(conn, tenant_id, conv, items)
        return [earlier[it["external_message_id"]] for it in items]
    stored = _range(conn, tenant_id, conv["id"], key.first_seq, key.last_seq)
    ours = {r["external_message_id"] for r in stored if r["external_message_id"] is not None}
    earlier = _existing_by_external_id(
        conn, tenant_id, conv, [it for it in items if it.get("external_message_id") not in ours]
    )
    new = [i for i, it in enumerate(items) if it.get("external_message_id") not in earlier]
    if not stored or len(new) != len(stored):
        return stored  # not the request that made this key: answer what the key stored
    stored_at = stored[0]["created_at"]
    new.sort(key=lambda i: items[i].get("occurred_at") or stored_at)
    answer: list[dict[str, Any]] = [{} for _ in items]
    for i, row in zip(new, stored, strict=True):
        answer[i] = row
    for i, it in enumerate(items):
        if not answer[i]:
            answer[i] = earlier[it["external_message_id"]]
    return answer


def _insert(conn: sa.Connection, new: list[dict[str, Any]]) -> None:
    """Insert the messages, then what is stored beside them, one executemany per table (and
    set of non-null columns)."""
    rows, delivery_rows, model_rows, moderation_rows = [], [], [], []
    for fields in new:
        rows.append({k: v for k, v in fields.items() if k in MESSAGE_COLUMNS})
        side = {
            "tenant_id": fields["tenant_id"],
            "message_id": fields["id"],
            "created_at": fields["created_at"],
        }
        if fields["delivery_status"] is not None:
            delivery = {col: fields[f] for f, col in DELIVERY_FIELDS.items()}
            delivery_rows.append(
                side
                | delivery
                | {"id": new_id(), "inbox_id": fields["inbox_id"], "attempts": 0}
                | {"next_attempt_at": fields.get("next_attempt_at")}
                | {"updated_at": fields["created_at"]}
            )
        if any(fields[f] is not None for f in MODEL_FIELDS):
            model = {col: fields[f] for f, col in MODEL_FIELDS.items()}
            model_rows.append(
                side
                | model
                | {"id": new_id(), "conversation_id": fields["conversation_id"]}
                | {"purpose": "reply"}
            )
        if fields["is_flagged"] or fields["flagged_reason"] or fields["quality_score"] is not None:
            flags = {col: fields[f] for f, col in MODERATION_FIELDS.items()}
            moderation_rows.append(
                side | flags | {"id": new_id(), "updated_at": fields["created_at"]}
            )
    _INSERT_MESSAGES.run_grouped(conn, rows)
    _INSERT_DELIVERIES.run_grouped(conn, delivery_rows)
    _INSERT_MODEL_CALLS.run_grouped(conn, model_rows)
    _INSERT_MODERATION.run_grouped(conn, moderation_rows)


#: Every field of a message as the API shows it, empty.
_EMPTY: dict[str, Any] = dict.fromkeys(SELECT.selected_columns.keys()) | {
    "message_type": MessageType.TEXT,
    "is_flagged": False,
}


def _fields(
    item: dict[str, Any],
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    inbox_id: uuid.UUID | None,
    now: datetime,
) -> dict[str, Any]:
    """A new message's fields, as stored and as answered (the answer is not read back)."""
    fields = _EMPTY | {k: v for k, v in item.items() if v is not None}
    role = Role(fields["role"])
    direction = Direction(fields.get("direction") or default_direction(role))
    if role == Role.TOOL and not fields.get("tool_call_id"):
        raise InvalidInput("a tool message needs tool_call_id")
    fields.update(
        id=new_id(),
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        inbox_id=inbox_id,
        role=role,
        direction=direction,
        sender_type=SenderType(fields.get("sender_type") or default_sender(role, direction)),
        message_type=MessageType(fields["message_type"]),
        occurred_at=fields.get("occurred_at") or now,
        created_at=now,
    )
    return fields


def _check_parents(
    conn: sa.Connection, tenant_id: uuid.UUID, items: Sequence[dict[str, Any]]
) -> None:
    """A ``parent_message_id`` must name one of the tenant's messages.

    The foreign key alone would accept another tenant's message (and answer a bare
    constraint error for an unknown id, telling which ids exist in other tenants).
    """
    wanted = {it["parent_message_id"] for it in items if it.get("parent_message_id")}
    if not wanted:
        return
    q = sa.select(messages_table.c.id).where(
        messages_table.c.tenant_id == tenant_id, messages_table.c.id.in_(wanted)
    )
    found = set(conn.scalars(q))
    for i, it in enumerate(items):
        parent = it.get("parent_message_id")
        if parent and parent not in found:
            raise InvalidInput(
                "parent_message_id does not name a message of this tenant",
                parent_message_id=str(parent),
                index=i,
            )


_BY_EXTERNAL_ID = SELECT.where(
    messages_table.c.tenant_id == sa.bindparam("t"),
    messages_table.c.external_message_id.in_(sa.bindparam("ext", expanding=True)),
)
_BY_EXTERNAL_IN_INBOX = _BY_EXTERNAL_ID.where(messages_table.c.inbox_id == sa.bindparam("scope"))
_BY_EXTERNAL_IN_CONVERSATION = _BY_EXTERNAL_ID.where(
    messages_table.c.conversation_id == sa.bindparam("scope")
)


def _existing_by_external_id(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conv: dict[str, Any],
    items: Sequence[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    ext_ids = [it["external_message_id"] for it in items if it.get("external_message_id")]
    if not ext_ids:
        return {}
    if conv["inbox_id"] is not None:
        q, scope = _BY_EXTERNAL_IN_INBOX, conv["inbox_id"]
    else:
        q, scope = _BY_EXTERNAL_IN_CONVERSATION, conv["id"]
    rows = _dicts(conn.execute(q, {"t": tenant_id, "scope": scope, "ext": ext_ids}))
    return {r["external_message_id"]: r for r in rows}


_RANGE = SELECT.where(
    messages_table.c.tenant_id == sa.bindparam("t"),
    messages_table.c.conversation_id == sa.bindparam("c"),
    messages_table.c.seq > sa.bindparam("after"),
    messages_table.c.seq < sa.bindparam("before"),
)
_PAGE = _RANGE.order_by(messages_table.c.seq).limit(sa.bindparam("n"))
_PAGE_LATEST = _RANGE.order_by(messages_table.c.seq.desc()).limit(sa.bindparam("n"))
_NO_SEQ = 2**31 - 1  # above any seq an int4 column holds in practice


def _range(
    conn: sa.Connection, tenant_id: uuid.UUID, conversation_id: uuid.UUID, first: int, last: int
) -> list[dict[str, Any]]:
    params = {"t": tenant_id, "c": conversation_id, "after": first - 1, "before": last + 1}
    return _dicts(conn.execute(_PAGE, params | {"n": last - first + 1}))


def list_range(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 50,
    latest: bool = False,
) -> tuple[list[dict[str, Any]], bool]:
    """Messages in seq order, and whether more lie beyond the page.

    Pages forward from ``after_seq``; with ``latest`` the page is the newest ``limit``
    messages (below ``before_seq`` if given), still returned in seq order, and "more" means
    older messages exist.
    """
    params = {
        "t": tenant_id,
        "c": conversation_id,
        "after": -1 if after_seq is None else after_seq,
        "before": _NO_SEQ if before_seq is None else before_seq,
        "n": limit + 1,
    }
    with db.connect() as conn:
        rows = _dicts(conn.execute(_PAGE_LATEST if latest else _PAGE, params))
        if not rows and conn.execute(_CONVERSATION, params).first() is None:
            raise NotFound("conversation not found", conversation_id=str(conversation_id))
    more = len(rows) > limit
    rows = rows[:limit]
    if latest:
        rows.reverse()
    return rows, more


def last(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, n: int = 20
) -> list[dict[str, Any]]:
    """The newest ``n`` messages in seq order: the agent's working window."""
    params = {"t": tenant_id, "c": conversation_id, "after": -1, "before": _NO_SEQ, "n": n}
    with db.connect() as conn:
        rows = _dicts(conn.execute(_PAGE_LATEST, params))
    rows.reverse()
    return rows


def _dicts(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]
