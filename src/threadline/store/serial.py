"""Rows as plain JSON values and back, the same on both backends.

A row read with SQLAlchemy Core holds UUIDs, timezone-aware datetimes, enum members, floats
and JSON documents; ``encode`` turns each into what ``json.dumps`` writes without loss
(UUIDs and timestamps as strings, enums as their values), and ``decode`` reads them back by
the column's type, so a row written out and read in again is the row it was. The contact
export and the tenant's JSONL export both use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa

from threadline.store.types import UTCDateTime


def value(v: Any) -> Any:
    """One value as plain JSON."""
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat(timespec="microseconds")
    if isinstance(v, Enum):
        return v.value
    return v


def encode(row: Mapping[Any, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """A row's columns as plain JSON values, leaving out ``skip``."""
    left_out = set(skip)
    return {k: value(v) for k, v in row.items() if k not in left_out}


def decode(table: sa.Table, data: Mapping[str, Any]) -> dict[str, Any]:
    """Values for ``table``'s columns from what ``encode`` wrote; unknown keys raise KeyError."""
    out: dict[str, Any] = {}
    for key, v in data.items():
        column = table.c[key]
        if v is None:
            out[key] = None
        elif isinstance(column.type, sa.Uuid):
            out[key] = uuid.UUID(v)
        elif isinstance(column.type, UTCDateTime):
            out[key] = datetime.fromisoformat(v)
        else:
            out[key] = v
    return out
