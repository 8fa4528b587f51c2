"""Idempotency keys: a client's ``Idempotency-Key`` and what its first request stored.

A key is remembered per tenant with a fingerprint of its request (method, path and body)
and the seq range the request stored in its conversation (0..0 when every message in it was
already stored). A later request with the same key and fingerprint is a replay; the same key
with another fingerprint is refused.

Keys expire: ``prune`` deletes those older than the retention (24 hours by default, the
``idempotency_ttl_hours`` setting), in small batches so it never holds the write lock for
long. A replay after that stores nothing new either way when its messages carry an
``external_message_id``; without one it is a new request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from threadline.domain.ids import new_id
from threadline.store.database import Database
from threadline.store.models import IdempotencyKey
from threadline.store.types import utcnow

keys = cast(sa.Table, IdempotencyKey.__table__)

_FIND = sa.select(keys.c.request_hash, keys.c.conversation_id, keys.c.first_seq, keys.c.last_seq)
_FIND = _FIND.where(keys.c.tenant_id == sa.bindparam("t"), keys.c.key == sa.bindparam("k"))


@dataclass(frozen=True)
class StoredKey:
    request_hash: str
    conversation_id: uuid.UUID
    first_seq: int
    last_seq: int

    @property
    def stored_nothing(self) -> bool:
        return self.first_seq == 0


def fingerprint(payload: Any, scope: str = "") -> str:
    """SHA-256 of a request's canonical JSON (and its scope, such as method and path): what
    an Idempotency-Key is compared by."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()


def find(conn: sa.Connection, tenant_id: uuid.UUID, key: str) -> StoredKey | None:
    row = conn.execute(_FIND, {"t": tenant_id, "k": key}).first()
    return None if row is None else StoredKey(*row)


def remember(
    conn: sa.Connection,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    key: str,
    request_hash: str,
    first_seq: int,
    last_seq: int,
    now: datetime,
) -> None:
    """Record a key and the seq range its request stored (0..0: nothing new)."""
    conn.execute(
        keys.insert(),
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


def prune(db: Database, older_than: timedelta, *, batch: int = 1_000) -> int:
    """Delete keys created more than ``older_than`` ago; answers how many. Each batch is its
    own short write, so writers are never held up for long."""
    cutoff = utcnow() - older_than
    return db.delete_in_batches(keys, keys.c.created_at < cutoff, keys.c.created_at, batch)
