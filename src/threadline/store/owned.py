"""Rows a tenant owns, fetched by id: another tenant's id answers like one that does not exist."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from threadline.domain.errors import NotFound

T = TypeVar("T")


def owned(
    s: Session,
    model: type[T],
    tenant_id: uuid.UUID,
    row_id: uuid.UUID,
    *,
    name: str,
    lock: bool = False,
) -> T:
    """The ``model`` row ``row_id`` of ``tenant_id`` (locked for update with ``lock``), else
    ``NotFound("<name> not found")``."""
    table: Any = model
    q = sa.select(model).where(table.tenant_id == tenant_id, table.id == row_id)
    row = s.scalar(q.with_for_update() if lock else q)
    if row is None:
        raise NotFound(f"{name} not found", **{f"{name}_id": str(row_id)})
    return row
