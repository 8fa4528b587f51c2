"""Messages: gap-free ordering, idempotent appends, batch import and reads by seq.

The write path, in one transaction:

1. lock the conversation row (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE`` on PostgreSQL);
2. answer a replay from what is stored: the same ``Idempotency-Key`` (its first request's
   messages) or an ``external_message_id`` already stored for the inbox (or, without an inbox,
   for the conversation);
3. give the new messages ``seq = message_count + 1, + 2 ...`` in ``occurred_at`` order;
4. insert them, move the conversation's counters and status (with a ``status_changed``
   event), and record the idempotency key.

Because step 1 serialises writers per conversation, seqs are unique and gap-free without
retries. Two requests racing on the same idempotency key or external id in *different*
conversations meet a unique index instead; the loser retries once and is answered as a replay.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

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
from threadline.store.conversations import status_change_data
from threadline.store.database import Database
from threadline.store.models import Conversation, ConversationEvent, IdempotencyKey, Message
from threadline.store.prepared import Prepared
from threadline.store.types import utcnow

M = cast(sa.Table, Message.__table__)  # a mapped class's table is typed as FromClause
COLUMNS = [c.key for c in M.columns]
# Enum columns are read as their plain string values (``StrEnum`` members compare equal to
# them): converting 5 columns x every row into enum members was a third of a page's cost.
_SELECT = sa.select(
    *(
        sa.type_coerce(c, sa.String()).label(c.key) if isinstance(c.type, sa.Enum) else c
        for c in M.columns
    )
)

#: Columns a caller may set; everything else is assigned here.
WRITABLE = frozenset(COLUMNS) - {
    "id",
    "tenant_id",
    "conversation_id",
    "inbox_id",
    "seq",
    "created_at",
}

_DEFAULTS: dict[str, Any] = {c: None for c in COLUMNS} | {
    "message_type": MessageType.TEXT,
    "is_flagged": False,
}


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


def append(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    items: Sequence[dict[str, Any]],
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Appended:
    """Store ``items`` (column values) at the end of a conversation, all or nothing.

    With ``idempotency_key``, a second call with the same key and the same request (by
    ``request_hash``, else by the items themselves) answers the first call's messages and
    stores nothing; the same key with another request or conversation raises
    ``IdempotencyMismatch``.
    """
    _check_batch(items)
    if idempotency_key is not None and request_hash is None:
        request_hash = request_fingerprint(items)
    for attempt in (1, 2):
        try:
            with db.transaction() as conn:
                return _append(
                    conn, tenant_id, conversation_id, items, idempotency_key, request_hash
                )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def request_fingerprint(payload: Any, scope: str = "") -> str:
    """SHA-256 of a request's canonical JSON (and its scope, such as method and path): what
    an Idempotency-Key is compared by."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()


def _check_batch(items: Sequence[dict[str, Any]]) -> None:
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


# The hot statements are built once; SQLAlchemy then reuses their compiled form.
C = cast(sa.Table, Conversation.__table__)
K = cast(sa.Table, IdempotencyKey.__table__)
E = cast(sa.Table, ConversationEvent.__table__)
_CONVERSATION_COLUMNS = sa.select(
    C.c.id,
    C.c.inbox_id,
    sa.type_coerce(C.c.channel, sa.String()).label("channel"),
    sa.type_coerce(C.c.status, sa.String()).label("status"),
    C.c.message_count,
    C.c.last_message_at,
).where(C.c.tenant_id == sa.bindparam("t"), C.c.id == sa.bindparam("c"))
# The conversation row an append works from. SQLite's BEGIN IMMEDIATE already holds the
# write lock, so only PostgreSQL locks the row; the plain form also answers "does it exist".
_CONVERSATION = Prepared(_CONVERSATION_COLUMNS)
_LOCK_PG = Prepared(_CONVERSATION_COLUMNS.with_for_update())
_KEY = Prepared(
    sa.select(K.c.request_hash, K.c.conversation_id, K.c.first_seq, K.c.last_seq).where(
        K.c.tenant_id == sa.bindparam("t"), K.c.key == sa.bindparam("k")
    )
)
_INSERT = Prepared(M.insert())
_INSERT_KEY = Prepared(K.insert())
_INSERT_EVENT = Prepared(E.insert())
_MOVE = Prepared(
    C.update()
    .where(C.c.tenant_id == sa.bindparam("t"), C.c.id == sa.bindparam("c"))
    .values(
        message_count=sa.bindparam("p_count"),
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
) -> Appended:
    lock = _LOCK_PG if conn.dialect.name == "postgresql" else _CONVERSATION
    conv = lock.one_or_none(conn, {"t": tenant_id, "c": conversation_id})
    if conv is None:
        raise NotFound("conversation not found", conversation_id=str(conversation_id))
    channel = Channel(conv["channel"])

    if idempotency_key is not None:
        key = _KEY.one_or_none(conn, {"t": tenant_id, "k": idempotency_key})
        if key is not None:
            if key["request_hash"] != request_hash or key["conversation_id"] != conversation_id:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was already used with a different request",
                    idempotency_key=idempotency_key,
                )
            replay = _replay(conn, tenant_id, conv, key, items)
            return Appended(replay, created=False, channel=channel)

    existing = _existing_by_external_id(conn, tenant_id, conv, items)

    now = utcnow()
    answer: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        ext = item.get("external_message_id")
        if ext in existing:
            answer.append(existing[ext])
        else:
            rows.append(_row(item, tenant_id, conversation_id, conv["inbox_id"], now))
            answer.append(rows[-1])
    if not rows:
        # Every item was already stored. The key is still recorded (with an empty seq range),
        # so reusing it later with a different body is refused like any other reuse.
        if idempotency_key is not None:
            _remember_key(
                conn, tenant_id, conversation_id, idempotency_key, request_hash, 0, 0, now
            )
        return Appended(answer, created=False, channel=channel)
    stored_now = [{} if it.get("external_message_id") in existing else it for it in items]
    _check_parents(conn, tenant_id, stored_now)
    rows.sort(key=lambda r: r["occurred_at"])  # stable: equal times keep request order
    for offset, row in enumerate(rows, start=1):
        row["seq"] = conv["message_count"] + offset
    _insert(conn, rows)

    old_status = ConversationStatus(conv["status"])
    status = old_status
    for row in rows:
        status = state_machine.after_message(status, row["direction"], row["role"])
    newest = max(r["occurred_at"] for r in rows)
    last_message_at = conv["last_message_at"]
    _MOVE.run(
        conn,
        {
            "t": tenant_id,
            "c": conversation_id,
            "p_count": conv["message_count"] + len(rows),
            "p_last_message_at": max(newest, last_message_at) if last_message_at else newest,
            "p_now": now,
            "p_status": status,
        },
    )
    if status != old_status:
        _INSERT_EVENT.run(
            conn,
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "conversation_id": conversation_id,
                "type": EventType.STATUS_CHANGED,
                "data": status_change_data(old_status, status, f"{rows[-1]['direction']}_message"),
                "created_at": now,
            },
        )
    if idempotency_key is not None:
        first, last = rows[0]["seq"], rows[-1]["seq"]
        _remember_key(
            conn, tenant_id, conversation_id, idempotency_key, request_hash, first, last, now
        )
    return Appended(answer, created=True, channel=channel, stored=len(rows))


def _remember_key(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    key: str,
    request_hash: str | None,
    first_seq: int,
    last_seq: int,
    now: datetime,
) -> None:
    """Record an Idempotency-Key and the seq range its request stored (0..0: nothing new)."""
    _INSERT_KEY.run(
        conn,
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "key": key,
            "request_hash": request_hash,
            "conversation_id": conversation_id,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "created_at": now,
        },
    )


def _replay(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conv: Any,
    key: Any,
    items: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The first request's answer again, in request order.

    The request is the same one (its hash matched), so its new messages took the key's seq
    range in the order ``_append`` gave them: stably by ``occurred_at``, which defaulted to
    the time they were stored. The other items were answered from messages stored earlier
    under their ``external_message_id``.
    """
    if key["first_seq"] == 0:  # the first request stored nothing: every item was a replay
        earlier = _existing_by_external_id(conn, tenant_id, conv, items)
        return [earlier[it["external_message_id"]] for it in items]
    stored = _range(conn, tenant_id, conv["id"], key["first_seq"], key["last_seq"])
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


def _insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert rows naming only their non-null columns: most of a message's 36 columns are
    empty, and SQLite's cost per row grows with every bound value. Rows with the same columns
    go in one executemany."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        present = {k: v for k, v in row.items() if v is not None}
        groups.setdefault(tuple(present), []).append(present)
    for columns, group in groups.items():
        _INSERT.run_many(conn, columns, group)


def _row(
    item: dict[str, Any],
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    inbox_id: uuid.UUID | None,
    now: datetime,
) -> dict[str, Any]:
    row = _DEFAULTS | {k: v for k, v in item.items() if v is not None}
    role = Role(row["role"])
    direction = Direction(row.get("direction") or default_direction(role))
    if role == Role.TOOL and not row.get("tool_call_id"):
        raise InvalidInput("a tool message needs tool_call_id")
    row.update(
        id=new_id(),
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        inbox_id=inbox_id,
        role=role,
        direction=direction,
        sender_type=SenderType(row.get("sender_type") or default_sender(role, direction)),
        message_type=MessageType(row["message_type"]),
        occurred_at=row.get("occurred_at") or now,
        created_at=now,
    )
    return row


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
    q = sa.select(M.c.id).where(M.c.tenant_id == tenant_id, M.c.id.in_(wanted))
    found = set(conn.scalars(q))
    for i, it in enumerate(items):
        parent = it.get("parent_message_id")
        if parent and parent not in found:
            raise InvalidInput(
                "parent_message_id does not name a message of this tenant",
                parent_message_id=str(parent),
                index=i,
            )


_BY_EXTERNAL_IN_INBOX = _SELECT.where(
    M.c.tenant_id == sa.bindparam("t"),
    M.c.inbox_id == sa.bindparam("scope"),
    M.c.external_message_id.in_(sa.bindparam("ext", expanding=True)),
)
_BY_EXTERNAL_IN_CONVERSATION = _SELECT.where(
    M.c.tenant_id == sa.bindparam("t"),
    M.c.conversation_id == sa.bindparam("scope"),
    M.c.external_message_id.in_(sa.bindparam("ext", expanding=True)),
)


def _existing_by_external_id(
    conn: sa.Connection, tenant_id: uuid.UUID, conv: Any, items: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    ext_ids = [it["external_message_id"] for it in items if it.get("external_message_id")]
    if not ext_ids:
        return {}
    if conv["inbox_id"] is not None:
        q, scope = _BY_EXTERNAL_IN_INBOX, conv["inbox_id"]
    else:
        q, scope = _BY_EXTERNAL_IN_CONVERSATION, conv["id"]
    rows = conn.execute(q, {"t": tenant_id, "scope": scope, "ext": ext_ids})
    return {r["external_message_id"]: r for r in _dicts(rows)}


def _range(
    conn: sa.Connection, tenant_id: uuid.UUID, conversation_id: uuid.UUID, first: int, last: int
) -> list[dict[str, Any]]:
    q = _SELECT.where(
        M.c.tenant_id == tenant_id,
        M.c.conversation_id == conversation_id,
        M.c.seq.between(first, last),
    ).order_by(M.c.seq)
    return _dicts(conn.execute(q))


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
    page = _PAGE_LATEST if latest else _PAGE
    params = {
        "t": tenant_id,
        "c": conversation_id,
        "after": -1 if after_seq is None else after_seq,
        "before": _NO_SEQ if before_seq is None else before_seq,
        "n": limit + 1,
    }
    with db.connect() as conn:
        rows = page.all(conn, params)
        if not rows and not _CONVERSATION.all(conn, params):
            raise NotFound("conversation not found", conversation_id=str(conversation_id))
    more = len(rows) > limit
    rows = rows[:limit]
    if latest:
        rows.reverse()
    return rows, more


_NO_SEQ = 2**31 - 1  # above any seq an int4 column holds in practice
_RANGE = _SELECT.where(
    M.c.tenant_id == sa.bindparam("t"),
    M.c.conversation_id == sa.bindparam("c"),
    M.c.seq > sa.bindparam("after"),
    M.c.seq < sa.bindparam("before"),
)
_PAGE = Prepared(_RANGE.order_by(M.c.seq).limit(sa.bindparam("n")))
_PAGE_LATEST = Prepared(_RANGE.order_by(M.c.seq.desc()).limit(sa.bindparam("n")))


def last(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, n: int = 20
) -> list[dict[str, Any]]:
    """The newest ``n`` messages in seq order: the agent's working window."""
    with db.connect() as conn:
        params = {"t": tenant_id, "c": conversation_id, "after": -1, "before": _NO_SEQ, "n": n}
        rows = _PAGE_LATEST.all(conn, params)
    rows.reverse()
    return rows


def _dicts(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]
