"""A tenant as JSON Lines, written out and read back without loss.

The first line is a header::

    {"type": "threadline.export", "version": 1, "revision": "0006", "exported_at": "...",
     "tenant": {"slug": "acme", "name": "Acme", "created_at": "...", "updated_at": "..."}}

then one line per row, ``{"type": TABLE, "data": {column: value}}``, table by table in the
order below (a row's references come before it) and by id within a table. Every column is
written (``store/serial.py``) except ``tenant_id``, which the importer supplies, and the
credentials, which never leave the server:

- users come without ``password_hash``: imported users get an unusable random password and
  set a new one (``threadline user create`` for a fresh account, or the admin);
- inboxes come without ``secrets_encrypted``: enter each provider's credentials again
  (``PATCH /v1/inboxes/{id}``).

Left out entirely, as derived or transient: API keys (credentials), embeddings (recomputed
by the embed loop or ``threadline reindex``), the agent job queue, idempotency keys, and any
table not listed here (webhook endpoints hold signing secrets).

Ids, seqs, counters and timestamps are kept, so a tenant exported, imported into an empty
database and exported again gives the same lines; only the header's ``exported_at`` (and
``revision``, between versions) differs. The import runs in one write transaction: a bad
line (its number is in the error) or a clash with rows already there imports nothing.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from threadline.domain.errors import AlreadyExists, InvalidInput
from threadline.domain.ids import new_id
from threadline.store import serial
from threadline.store.database import Database
from threadline.store.models import (
    ActionLog,
    Agent,
    Base,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationEvent,
    Event,
    Inbox,
    Message,
    MessageDelivery,
    MessageModeration,
    MessageStatusEvent,
    ModelCall,
    Suggestion,
    Summary,
    Tenant,
    User,
)
from threadline.store.types import utcnow

HEADER_TYPE = "threadline.export"
VERSION = 1

#: The tables written, in an order where each row's references come first.
MODELS: tuple[type[Base], ...] = (
    Agent,
    User,
    Inbox,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    MessageDelivery,
    ModelCall,
    MessageModeration,
    MessageStatusEvent,
    ConversationEvent,
    Event,
    ActionLog,
    Suggestion,
    Summary,
)
TABLES: dict[str, sa.Table] = {
    cast(sa.Table, m.__table__).name: cast(sa.Table, m.__table__) for m in MODELS
}
#: Columns never written: the tenant (the importer's) and credentials.
LEFT_OUT: dict[str, frozenset[str]] = {
    "users": frozenset({"tenant_id", "password_hash"}),
    "inboxes": frozenset({"tenant_id", "secrets_encrypted"}),
}
_ALWAYS_LEFT_OUT = frozenset({"tenant_id"})
tenants_t = cast(sa.Table, Tenant.__table__)


def _left_out(table: str) -> frozenset[str]:
    return LEFT_OUT.get(table, _ALWAYS_LEFT_OUT)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def _revision(conn: sa.Connection) -> str | None:
    try:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except sa.exc.DBAPIError:
        return None


def export_tenant(
    db: Database, tenant_id: uuid.UUID, out: IO[str], on_row: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Write the tenant to ``out``; answers the rows written per table."""
    counts: dict[str, int] = {}
    with db.connect() as conn:
        tenant = conn.execute(sa.select(tenants_t).where(tenants_t.c.id == tenant_id)).mappings()
        row = tenant.one()
        header = {
            "type": HEADER_TYPE,
            "version": VERSION,
            "revision": _revision(conn),
            "exported_at": serial.value(utcnow()),
            "tenant": serial.encode(row, skip=("id",)),
        }
        out.write(_line(header))
        for name, table in TABLES.items():
            skip = _left_out(name)
            query = sa.select(table).where(table.c.tenant_id == tenant_id).order_by(table.c.id)
            counts[name] = 0
            for r in conn.execution_options(yield_per=1000).execute(query).mappings():
                out.write(_line({"type": name, "data": serial.encode(r, skip=skip)}))
                counts[name] += 1
                if on_row is not None:
                    on_row(name)
    return counts


@dataclass
class Loaded:
    """What an import read: the tenant's slug and the rows per table."""

    slug: str
    counts: dict[str, int] = field(default_factory=dict)


def read_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parsed records with their line numbers; a line that is not a JSON object raises
    ``InvalidInput`` naming it."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"line {number}: not JSON ({exc})", line=number) from None
        if not isinstance(record, dict):
            raise InvalidInput(f"line {number}: not a JSON object", line=number)
        yield number, record


def _decode(number: int, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name, data = record.get("type"), record.get("data")
    table = TABLES.get(name) if isinstance(name, str) else None
    if table is None or not isinstance(data, dict):
        raise InvalidInput(
            f"line {number}: expected {{'type': TABLE, 'data': {{...}}}} with a table of the "
            f"export, got type {name!r}",
            line=number,
        )
    assert isinstance(name, str)
    unknown = set(data) - {c.key for c in table.columns} | (set(data) & _left_out(name))
    if unknown:
        raise InvalidInput(
            f"line {number}: unknown {name} columns: {', '.join(sorted(unknown))}", line=number
        )
    try:
        return name, serial.decode(table, data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"line {number}: a bad {name} value ({exc})", line=number) from None


_BATCH = 1000


def import_tenant(
    db: Database,
    lines: Iterable[str],
    *,
    slug: str | None = None,
    on_row: Callable[[str], None] | None = None,
) -> Loaded:
    """Read an export into tenant ``slug`` (default: the export's), created if missing; an
    existing tenant must hold no contacts, conversations or agents yet. All or nothing."""
    from pwdlib import PasswordHash

    records = read_lines(lines)
    first = next(records, None)
    if first is None or first[1].get("type") != HEADER_TYPE:
        raise InvalidInput("line 1: not a Threadline export (no header line)", line=1)
    header = first[1]
    if header.get("version") != VERSION:
        raise InvalidInput(f"line 1: export version {header.get('version')!r} is not {VERSION}")
    tenant_fields = header.get("tenant")
    if not isinstance(tenant_fields, dict) or not isinstance(tenant_fields.get("slug"), str):
        raise InvalidInput("line 1: the header names no tenant", line=1)
    target = slug or tenant_fields["slug"]
    unusable = PasswordHash.recommended().hash(secrets.token_urlsafe(32))
    loaded = Loaded(target)

    try:
        with db.transaction() as conn:
            _load(conn, records, target, tenant_fields, unusable, loaded, on_row)
    except IntegrityError as exc:
        raise AlreadyExists(
            "the import clashes with rows already in this database (imported before?)"
        ) from exc
    return loaded


def _load(
    conn: sa.Connection,
    records: Iterator[tuple[int, dict[str, Any]]],
    target: str,
    tenant_fields: dict[str, Any],
    unusable: str,
    loaded: Loaded,
    on_row: Callable[[str], None] | None,
) -> None:
    tenant_id = _target_tenant(conn, target, tenant_fields)
    pending: dict[str, list[dict[str, Any]]] = {}
    parents: list[tuple[uuid.UUID, uuid.UUID]] = []

    def flush(name: str) -> None:
        rows = pending.pop(name, [])
        if rows:
            conn.execute(TABLES[name].insert(), rows)

    current: str | None = None
    for number, record in records:
        name, row = _decode(number, record)
        if name != current:
            if current is not None:
                flush(current)
            current = name
        row["tenant_id"] = tenant_id
        if name == "users":
            row["password_hash"] = unusable
        if name == "messages" and row.get("parent_message_id") is not None:
            parents.append((row["id"], row["parent_message_id"]))
            row["parent_message_id"] = None  # set below, once every message is in
        pending.setdefault(name, []).append(row)
        loaded.counts[name] = loaded.counts.get(name, 0) + 1
        if len(pending[name]) >= _BATCH:
            flush(name)
        if on_row is not None:
            on_row(name)
    for name in list(pending):
        flush(name)
    messages_t = TABLES["messages"]
    for child, parent in parents:
        conn.execute(
            messages_t.update()
            .where(messages_t.c.tenant_id == tenant_id, messages_t.c.id == child)
            .values(parent_message_id=parent)
        )


def _target_tenant(conn: sa.Connection, slug: str, fields: dict[str, Any]) -> uuid.UUID:
    found = conn.execute(sa.select(tenants_t.c.id).where(tenants_t.c.slug == slug)).scalar()
    if found is None:
        values = serial.decode(tenants_t, {k: v for k, v in fields.items() if k != "id"})
        values["slug"] = slug
        values.setdefault("name", slug)
        tenant_id = new_id()
        conn.execute(tenants_t.insert().values(id=tenant_id, **values))
        return tenant_id
    for model in (Contact, Conversation, Agent):
        table = cast(sa.Table, model.__table__)
        if conn.execute(sa.select(table.c.id).where(table.c.tenant_id == found).limit(1)).first():
            raise AlreadyExists(
                f"tenant {slug!r} already has data: import into a new tenant (--tenant SLUG)",
                tenant=slug,
            )
    return cast(uuid.UUID, found)
