"""Opaque cursors for keyset pagination.

A cursor is URL-safe base64 of a small JSON list: the sort key of the last row returned.
Clients treat it as opaque; anything we did not issue raises ``InvalidCursor``.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from threadline.domain.errors import InvalidCursor

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode(*key: Any) -> str:
    raw = json.dumps([str(k) if not isinstance(k, (int, str)) else k for k in key])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, *, kinds: tuple[type, ...]) -> list[Any]:
    """Decode a cursor whose parts have the given types (``str`` or ``int``)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise InvalidCursor("the cursor is not one this server issued", cursor=cursor) from exc
    if (
        not isinstance(key, list)
        or len(key) != len(kinds)
        or not all(type(k) is kind for k, kind in zip(key, kinds, strict=True))
    ):
        raise InvalidCursor("the cursor is not one this server issued", cursor=cursor)
    return key


def encode_time_id(ts: datetime, row_id: uuid.UUID) -> str:
    """Cursor for lists sorted newest first by a timestamp, ties broken by id."""
    return encode(ts.isoformat(), str(row_id))


def decode_time_id(cursor: str) -> tuple[datetime, uuid.UUID]:
    ts, row_id = decode(cursor, kinds=(str, str))
    try:
        when = datetime.fromisoformat(ts)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor("the cursor is not one this server issued", cursor=cursor) from exc


def before(cursor: str | None, ts_col: Any, id_col: Any) -> Any:
    """WHERE clause for the rows after ``cursor`` in newest-first order (True if no cursor)."""
    if not cursor:
        return sa.true()
    ts, row_id = decode_time_id(cursor)
    return sa.tuple_(ts_col, id_col) < sa.tuple_(
        sa.literal(ts, ts_col.type), sa.literal(row_id, id_col.type)
    )


def newest_first(
    session: Session, query: Any, ts_col: Any, id_col: Any, *, limit: int, cursor: str | None
) -> Page[Any]:
    """One page of ``query`` (ORM rows), newest ``ts_col`` first with ties broken by
    ``id_col``, starting after ``cursor``."""
    q = (
        query.where(before(cursor, ts_col, id_col))
        .order_by(ts_col.desc(), id_col.desc())
        .limit(limit + 1)
    )
    rows = list(session.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return Page(rows, None)
    last = rows[-1]
    return Page(rows, encode_time_id(getattr(last, ts_col.key), getattr(last, id_col.key)))
