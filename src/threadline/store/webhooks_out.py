"""Outgoing webhooks: the endpoints a tenant registers and the log of what was sent to them.

An endpoint reads the tenant's event log (``store/events.py``) with a cursor of its own,
starting at its creation. ``fan_out`` turns the events it has not read yet (of the types
it asked for) into ``webhook_deliveries`` rows, one per (endpoint, event), and moves the
cursor in the same transaction; the unique (tenant, endpoint, event) key makes a second
worker reading the same events harmless.

Only events older than ``settle`` are read: event ids are taken before their transaction
commits, so an event with a smaller id can become visible after one with a larger id; a
cursor that moved past it would skip it for good.

A delivery's life: ``pending`` with ``next_attempt_at`` (due), claimed by a worker for a
lease (``attempts`` + 1, ``next_attempt_at`` pushed out by the lease, so a worker that dies
leaves it to be sent again), then ``delivered`` (a 2xx), ``pending`` again after a backoff
(a retryable failure) or ``failed``. Every record is fenced by ``attempts``. ``redeliver``
makes any delivery due again now.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from threadline.domain.errors import InvalidCursor, NotFound
from threadline.domain.ids import new_id
from threadline.store import pagination
from threadline.store.database import Database
from threadline.store.models import Event, WebhookDelivery, WebhookEndpoint
from threadline.store.types import utcnow

endpoints = cast(sa.Table, WebhookEndpoint.__table__)
deliveries = cast(sa.Table, WebhookDelivery.__table__)
events = cast(sa.Table, Event.__table__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

#: The events one endpoint reads per round.
BATCH = 500

_ENDPOINT = (
    endpoints.c.id,
    endpoints.c.url,
    endpoints.c.description,
    endpoints.c.event_types,
    endpoints.c.created_at,
    endpoints.c.updated_at,
)
_DELIVERY = (
    deliveries.c.id,
    deliveries.c.endpoint_id,
    deliveries.c.event_id,
    deliveries.c.event_type,
    deliveries.c.conversation_id,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.status_code,
    deliveries.c.error,
    deliveries.c.next_attempt_at,
    deliveries.c.delivered_at,
    deliveries.c.created_at,
    deliveries.c.updated_at,
)


def new_secret() -> str:
    """A signing secret as the Standard Webhooks spec spells it: ``whsec_`` and base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def id_at(when: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond ``when``: ids below it are older."""
    return uuid.UUID(int=int(when.timestamp() * 1000) << 80)


# -- endpoints ---------------------------------------------------------------------------


def create_endpoint(
    db: Database,
    tenant_id: uuid.UUID,
    *,
    url: str,
    event_types: Sequence[str] | None,
    description: str | None,
) -> tuple[dict[str, Any], str]:
    """Register an endpoint that receives the events from now on; answers it and its
    signing secret (the only time the secret leaves the server through the API)."""
    now = utcnow()
    secret = new_secret()
    values = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "url": url,
        "description": description,
        "event_types": list(event_types) if event_types else None,
        "secret": secret,
        "cursor": new_id(),
        "created_at": now,
        "updated_at": now,
    }
    db.run_write(lambda conn: conn.execute(endpoints.insert(), values))
    return {k: values[k] for k in (c.key for c in _ENDPOINT)}, secret


def list_endpoints(db: Database, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Oldest first."""
    q = (
        sa.select(*_ENDPOINT)
        .where(endpoints.c.tenant_id == tenant_id)
        .order_by(endpoints.c.created_at, endpoints.c.id)
    )
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def get_endpoint(db: Database, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> dict[str, Any]:
    q = sa.select(*_ENDPOINT).where(
        endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id
    )
    with db.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        raise NotFound("webhook endpoint not found", webhook_endpoint_id=str(endpoint_id))
    return dict(row)


def delete_endpoint(db: Database, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """Delete an endpoint and its delivery log; nothing more is sent to it."""
    statement = endpoints.delete().where(
        endpoints.c.tenant_id == tenant_id, endpoints.c.id == endpoint_id
    )
    if not db.run_write(lambda conn: conn.execute(statement).rowcount):
        raise NotFound("webhook endpoint not found", webhook_endpoint_id=str(endpoint_id))


# -- the delivery log --------------------------------------------------------------------


def list_deliveries(
    db: Database,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
) -> pagination.Page[dict[str, Any]]:
    """An endpoint's deliveries, newest event first."""
    get_endpoint(db, tenant_id, endpoint_id)
    q = sa.select(*_DELIVERY).where(
        deliveries.c.tenant_id == tenant_id, deliveries.c.endpoint_id == endpoint_id
    )
    if cursor:
        [before] = pagination.decode(cursor, kinds=(str,))
        try:
            q = q.where(deliveries.c.event_id < uuid.UUID(before))
        except ValueError as exc:
            raise InvalidCursor("the cursor is not one this server issued") from exc
    q = q.order_by(deliveries.c.event_id.desc()).limit(limit + 1)
    with db.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = pagination.encode(str(rows[-1]["event_id"])) if more and rows else None
    return pagination.Page(rows, next_cursor)


def get_delivery(db: Database, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Any]:
    q = sa.select(*_DELIVERY).where(
        deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id
    )
    with db.connect() as conn:
        row = conn.execute(q).mappings().first()
    if row is None:
        raise NotFound("webhook delivery not found", webhook_delivery_id=str(delivery_id))
    return dict(row)


def redeliver(db: Database, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Any]:
    """Send a delivery again now, whatever became of it, with a fresh set of attempts."""
    now = utcnow()
    statement = (
        deliveries.update()
        .where(deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id)
        .values(status=PENDING, attempts=0, next_attempt_at=now, error=None, updated_at=now)
    )
    if not db.run_write(lambda conn: conn.execute(statement).rowcount):
        raise NotFound("webhook delivery not found", webhook_delivery_id=str(delivery_id))
    return get_delivery(db, tenant_id, delivery_id)


# -- the sender's side -------------------------------------------------------------------


def fan_out(db: Database, *, settle: timedelta, now: datetime | None = None) -> int:
    """Turn every endpoint's unread events (older than ``settle``) into deliveries; answers
    how many deliveries were made. An idle log costs one read per endpoint."""
    now = now or utcnow()
    bound = id_at(now - settle)
    with db.connect() as conn:
        readers = conn.execute(
            sa.select(
                endpoints.c.id, endpoints.c.tenant_id, endpoints.c.event_types, endpoints.c.cursor
            )
        ).all()
    made = 0
    for endpoint_id, tenant_id, types, cursor in readers:
        while True:
            batch = _unread(db, tenant_id, cursor, bound)
            if not batch:
                break
            made += _deliver_batch(db, endpoint_id, tenant_id, types, cursor, batch, now)
            cursor = batch[-1]["id"]
            if len(batch) < BATCH:
                break
    return made


def _unread(
    db: Database, tenant_id: uuid.UUID, cursor: uuid.UUID | None, bound: uuid.UUID
) -> list[dict[str, Any]]:
    q = sa.select(
        events.c.id, events.c.type, events.c.conversation_id, events.c.data, events.c.created_at
    ).where(events.c.tenant_id == tenant_id, events.c.id < bound)
    if cursor is not None:
        q = q.where(events.c.id > cursor)
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(events.c.id).limit(BATCH)).mappings()]


def _deliver_batch(
    db: Database,
    endpoint_id: uuid.UUID,
    tenant_id: uuid.UUID,
    types: list[str] | None,
    cursor: uuid.UUID | None,
    batch: list[dict[str, Any]],
    now: datetime,
) -> int:
    rows = [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "endpoint_id": endpoint_id,
            "event_id": e["id"],
            "event_type": e["type"],
            "conversation_id": e["conversation_id"],
            "event_data": e["data"],
            "event_created_at": e["created_at"],
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for e in batch
        if not types or e["type"] in types
    ]

    def work(conn: sa.Connection) -> int:
        # The cursor moves only from where this round read it: a second worker that got
        # there first has made these deliveries already.
        same = endpoints.c.cursor.is_(None) if cursor is None else endpoints.c.cursor == cursor
        moved = conn.execute(
            endpoints.update()
            .where(endpoints.c.id == endpoint_id, same)
            .values(cursor=batch[-1]["id"])
        ).rowcount
        if not moved or not rows:
            return 0
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        conn.execute(dialect.insert(deliveries).on_conflict_do_nothing(), rows)
        return len(rows)

    return db.run_write(work)


@dataclass(frozen=True)
class Claim:
    """A delivery taken by a worker, with what sending it needs."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    secret: str
    attempts: int
    event_id: uuid.UUID
    event_type: str
    conversation_id: uuid.UUID | None
    event_data: dict[str, Any] | None
    event_created_at: datetime


_DUE = deliveries.c.status == PENDING
_CLAIMABLE = (
    sa.select(
        deliveries.c.id,
        deliveries.c.tenant_id,
        deliveries.c.endpoint_id,
        endpoints.c.url,
        endpoints.c.secret,
        deliveries.c.attempts,
        deliveries.c.event_id,
        deliveries.c.event_type,
        deliveries.c.conversation_id,
        deliveries.c.event_data,
        deliveries.c.event_created_at,
    )
    .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
    .where(_DUE, deliveries.c.next_attempt_at <= sa.bindparam("now"))
    .order_by(deliveries.c.next_attempt_at)
    .limit(sa.bindparam("n"))
)
_PEEK = (
    sa.select(deliveries.c.id)
    .where(_DUE, deliveries.c.next_attempt_at <= sa.bindparam("now"))
    .limit(1)
)


def claim(
    db: Database, *, limit: int, lease: timedelta, now: datetime | None = None
) -> list[Claim]:
    """Take up to ``limit`` due deliveries for ``lease``; an idle queue costs one read."""
    now = now or utcnow()
    with db.connect() as conn:
        if conn.execute(_PEEK, {"now": now}).first() is None:
            return []

    def work(conn: sa.Connection) -> list[Claim]:
        q = _CLAIMABLE
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(of=deliveries, skip_locked=True)
        rows = conn.execute(q, {"now": now, "n": limit}).mappings().all()
        if not rows:
            return []
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_([r["id"] for r in rows]))
            .values(attempts=deliveries.c.attempts + 1, next_attempt_at=now + lease, updated_at=now)
        )
        return [Claim(**{**r, "attempts": r["attempts"] + 1}) for r in rows]

    return db.run_write(work)


def record(
    db: Database,
    c: Claim,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    retry_at: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """The outcome of an attempt: ``delivered``, ``pending`` again until ``retry_at``, or
    ``failed``. Answers whether the claim was still this worker's."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "status": status,
        "status_code": status_code,
        "error": error,
        "next_attempt_at": retry_at if status == PENDING else None,
        "updated_at": now,
    }
    if status == DELIVERED:
        values["delivered_at"] = now
    statement = (
        deliveries.update()
        .where(
            deliveries.c.id == c.id,
            deliveries.c.attempts == c.attempts,
            deliveries.c.status == PENDING,
        )
        .values(values)
    )
    return bool(db.run_write(lambda conn: conn.execute(statement).rowcount))
