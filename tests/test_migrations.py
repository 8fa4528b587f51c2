"""The schema as the migrations build it, on SQLite and PostgreSQL.

An empty database upgraded to head matches the models; down to base and up again works; each
revision carries the data over both ways; the constraints the models declare (enum checks,
cascades, unique orderings and idempotency keys) hold in the live database, tested with SQL
that goes around the ORM.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from threadline.domain.enums import Channel, DeliveryStatus, InboxMode
from threadline.store import (
    Database,
    contacts,
    conversations,
    messages,
    migrate,
    search_schema,
    tenants,
)
from threadline.store.models import (
    Base,
    Conversation,
    Inbox,
    Message,
    MessageDelivery,
    MessageModeration,
    ModelCall,
)
from threadline.store.types import JSONType, UTCDateTime, utcnow

TABLES = {t.name for t in Base.metadata.sorted_tables}


@pytest.fixture
def empty_db(empty_db_url: str) -> Iterator[Database]:
    database = Database.from_url(empty_db_url)
    yield database
    database.dispose()


def _tables(db: Database) -> set[str]:
    names = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
    return {n for n in names if not search_schema.is_internal_table(n)}


# --- upgrade, downgrade, check ---------------------------------------------------------------


def test_empty_database_upgraded_to_head_matches_the_models(empty_db: Database) -> None:
    assert _tables(empty_db) == set()
    report = migrate.check(empty_db)
    assert not report.ok
    assert f"missing table {'messages'}" in report.differences

    migrate.upgrade(empty_db)

    report = migrate.check(empty_db)
    assert report.differences == []
    assert report.revision == report.head == migrate.head()
    assert report.ok
    assert migrate.is_current(empty_db)
    assert _tables(empty_db) == TABLES


def test_upgrade_downgrade_base_and_upgrade_again(empty_db: Database) -> None:
    migrate.upgrade(empty_db)
    assert migrate.current(empty_db) == migrate.head()

    migrate.downgrade(empty_db, "base")
    assert migrate.current(empty_db) is None
    assert _tables(empty_db) == set()

    migrate.upgrade(empty_db, "head")
    assert migrate.current(empty_db) == migrate.head()
    assert migrate.check(empty_db).ok
    # and the schema works after the round trip
    t = make_data(empty_db)
    assert _count(empty_db, "messages", t["conversation_id"]) == 2


def test_upgrade_twice_is_a_no_op(empty_db: Database) -> None:
    migrate.upgrade(empty_db)
    migrate.upgrade(empty_db)
    assert migrate.check(empty_db).ok


# --- 0002: the message log, carried over both ways --------------------------------------------


def _raw_insert(conn: sa.Connection, table: str, row: dict[str, Any]) -> None:
    """Insert with plain SQL, typing each value by its Python type (no models: they are at head)."""
    kinds: list[tuple[type, Any]] = [
        (bool, sa.Boolean()),
        (uuid.UUID, sa.Uuid()),
        (datetime, UTCDateTime()),
        (dict, JSONType),
        (list, JSONType),
    ]
    params = [
        sa.bindparam(name, type_=next((k for t, k in kinds if isinstance(value, t)), None))
        for name, value in row.items()
    ]
    names = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    conn.execute(
        sa.text(f"INSERT INTO {table} ({names}) VALUES ({values})").bindparams(*params), row
    )


def _rows(db: Database, sql: str) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.exec_driver_sql(sql)]


def _columns(db: Database, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(db.engine).get_columns(table)}


T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0.replace(minute=minutes)


def _message_at_0001(n: int, d: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": d["tenant_id"],
        "conversation_id": d["conversation_id"],
        "inbox_id": d["inbox_id"],
        "seq": n,
        "role": "assistant",
        "sender_type": "agent",
        "direction": "outbound",
        "message_type": "text",
        "content": f"message {n}",
        "is_flagged": False,
        "metadata": {"n": n},
        "occurred_at": _at(n),
        "created_at": _at(n),
    } | fields


def _fill_0001(db: Database) -> dict[str, Any]:
    """Messages with delivery, model and moderation fields, and rows that point at them."""
    d: dict[str, Any] = {
        "tenant_id": uuid.uuid4(),
        "inbox_id": uuid.uuid4(),
        "conversation_id": uuid.uuid4(),
        "empty_conversation_id": uuid.uuid4(),
    }
    m1 = _message_at_0001(
        1,
        d,
        external_message_id="SM1",
        delivery_status="delivered",
        sent_at=_at(2),
        delivered_at=_at(3),
        model_used="gpt-4o-mini",
        prompt_used="You are helpful.",
        token_usage={"prompt_tokens": 10, "completion_tokens": 5},
        cost_usd=0.002,
        response_time_ms=850,
        is_flagged=True,
        flagged_reason="rude",
        quality_score=0.4,
    )
    m2 = _message_at_0001(
        2, d, role="user", sender_type="contact", direction="inbound", parent_message_id=m1["id"]
    )
    m3 = _message_at_0001(3, d, delivery_status="failed", delivery_error="30007", quality_score=0.9)
    m4 = _message_at_0001(5, d, token_usage={"total_tokens": 7})  # seq 4 was erased
    d["messages"] = [m1, m2, m3, m4]
    with db.engine.begin() as conn:
        _raw_insert(
            conn,
            "tenants",
            {
                "id": d["tenant_id"],
                "slug": "acme",
                "name": "Acme",
                "created_at": T0,
                "updated_at": T0,
            },
        )
        _raw_insert(
            conn,
            "inboxes",
            {
                "id": d["inbox_id"],
                "tenant_id": d["tenant_id"],
                "channel": "sms",
                "name": "main",
                "address": "+14155550199",
                "mode": "approval",
                "settings": {},
                "is_active": True,
                "created_at": T0,
                "updated_at": T0,
            },
        )
        for conv_id, count in ((d["conversation_id"], 4), (d["empty_conversation_id"], 0)):
            _raw_insert(
                conn,
                "conversations",
                {
                    "id": conv_id,
                    "tenant_id": d["tenant_id"],
                    "inbox_id": d["inbox_id"],
                    "channel": "sms",
                    "status": "active",
                    "message_count": count,
                    "last_activity_at": T0,
                    "metadata": {},
                    "created_at": T0,
                    "updated_at": T0,
                },
            )
        for m in d["messages"]:
            _raw_insert(conn, "messages", m)
        _raw_insert(
            conn,
            "message_status_events",
            {
                "id": uuid.uuid4(),
                "tenant_id": d["tenant_id"],
                "message_id": m1["id"],
                "status": "delivered",
                "occurred_at": _at(3),
                "created_at": _at(3),
            },
        )
        _raw_insert(
            conn,
            "suggestions",
            {
                "id": uuid.uuid4(),
                "tenant_id": d["tenant_id"],
                "conversation_id": d["conversation_id"],
                "in_reply_to_message_id": m2["id"],
                "sent_message_id": m1["id"],
                "content": "draft",
                "status": "approved",
                "created_at": T0,
                "updated_at": T0,
            },
        )
        _raw_insert(
            conn,
            "action_logs",
            {
                "id": uuid.uuid4(),
                "tenant_id": d["tenant_id"],
                "conversation_id": d["conversation_id"],
                "message_id": m1["id"],
                "action_name": "send_sms",
                "action_type": "tool",
                "created_at": T0,
            },
        )
    return d


def _pointers(db: Database) -> list[Any]:
    """What the rows that point at messages point at (a rebuilt table must not lose them)."""
    return [
        _rows(db, "SELECT message_id FROM message_status_events"),
        _rows(db, "SELECT in_reply_to_message_id, sent_message_id FROM suggestions"),
        _rows(db, "SELECT message_id FROM action_logs"),
        _rows(db, "SELECT id, parent_message_id FROM messages ORDER BY seq"),
    ]


def test_0002_carries_messages_delivery_model_and_moderation_fields_over_and_back(
    empty_db: Database,
) -> None:
    db = empty_db
    migrate.upgrade(db, "0001")
    d = _fill_0001(db)
    m1, _, m3, m4 = (m["id"] for m in d["messages"])
    before = _rows(db, "SELECT * FROM messages ORDER BY seq")
    pointers = _pointers(db)

    migrate.upgrade(db, "0002")

    assert "delivery_status" not in _columns(db, "messages")
    assert "is_flagged" not in _columns(db, "messages")
    assert _pointers(db) == pointers
    if db.dialect == "sqlite":  # the migration turned foreign keys off, and on again
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

    with db.read() as s:
        # the columns 0002 made (later revisions add more)
        live = _columns(db, "message_deliveries")
        in_0002 = [c for c in MessageDelivery.__table__.c if c.name in live]
        deliveries = {r.message_id: r for r in s.execute(sa.select(*in_0002))}
        calls = {r.message_id: r for r in s.scalars(sa.select(ModelCall))}
        moderation = {r.message_id: r for r in s.scalars(sa.select(MessageModeration))}
        last_seq = {
            r.id: r.last_seq for r in s.execute(sa.select(Conversation.id, Conversation.last_seq))
        }
    assert set(deliveries) == {m1, m3}
    assert (deliveries[m1].status, deliveries[m1].external_message_id) == ("delivered", "SM1")
    assert (deliveries[m1].sent_at, deliveries[m1].delivered_at) == (_at(2), _at(3))
    assert (deliveries[m1].read_at, deliveries[m1].error, deliveries[m1].attempts) == (
        None,
        None,
        0,
    )
    assert deliveries[m1].inbox_id == d["inbox_id"]
    assert (deliveries[m3].status, deliveries[m3].error) == ("failed", "30007")
    assert deliveries[m1].id.version == 7

    assert set(calls) == {m1, m4}
    c1 = calls[m1]
    assert (c1.purpose, c1.conversation_id, c1.agent_id) == ("reply", d["conversation_id"], None)
    assert (c1.model, c1.prompt, c1.cost_usd) == ("gpt-4o-mini", "You are helpful.", 0.002)
    assert c1.token_usage == {"prompt_tokens": 10, "completion_tokens": 5}
    assert (c1.response_time_ms, c1.created_at) == (850, _at(1))
    assert (calls[m4].token_usage, calls[m4].model) == ({"total_tokens": 7}, None)

    assert set(moderation) == {m1, m3}
    assert (moderation[m1].is_flagged, moderation[m1].flagged_reason) == (True, "rude")
    assert moderation[m1].quality_score == 0.4
    assert (moderation[m3].is_flagged, moderation[m3].quality_score) == (False, 0.9)

    assert last_seq == {d["conversation_id"]: 5, d["empty_conversation_id"]: 0}

    # written after the upgrade: the provider's id of m4 once sent, and a call with no message
    with db.write() as s:
        # through Core, naming only 0002's columns (the model has later ones)
        s.execute(
            sa.insert(MessageDelivery.__table__).values(
                tenant_id=d["tenant_id"],
                message_id=m4,
                status=DeliveryStatus.SENT,
                external_message_id="SM4",
                sent_at=_at(6),
            )
        )
        s.add(ModelCall(tenant_id=d["tenant_id"], purpose="score", model="gpt-4o-mini"))

    migrate.downgrade(db, "0001")

    assert _tables(db) == set(TABLES_0001)
    assert "last_seq" not in _columns(db, "conversations")
    after = _rows(db, "SELECT * FROM messages ORDER BY seq")
    assert [r["id"] for r in after] == [r["id"] for r in before]
    changed = {"delivery_status": "sent", "external_message_id": "SM4", "sent_at": _at(6)}
    expected = [*before[:3], before[3] | changed]
    if db.dialect == "sqlite":  # stored as text: compare what the column type reads back
        expected[3]["sent_at"] = after[3]["sent_at"]
        assert UTCDateTime().process_result_value(after[3]["sent_at"], db.engine.dialect) == _at(6)
    assert after == expected
    assert _pointers(db) == pointers


TABLES_0001 = sorted(
    TABLES
    - {"message_deliveries", "model_calls", "message_moderation", "embeddings", "agent_jobs"}
    - {"events", "webhook_endpoints", "webhook_deliveries"}
)


def _schema(db: Database) -> dict[str, Any]:
    """Tables with their columns, indexes, constraints, as the database reports them."""
    inspector = sa.inspect(db.engine)
    out: dict[str, Any] = {}
    for table in sorted(_tables(db)):
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(str(u["name"]) for u in inspector.get_unique_constraints(table)),
            "checks": sorted(
                (str(c["name"]), " ".join(c["sqltext"].split()))
                for c in inspector.get_check_constraints(table)
            ),
            "fks": sorted(
                (
                    str(fk["name"]),
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    str((fk.get("options") or {}).get("ondelete")),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
        }
    return out


def test_0002_downgraded_is_the_0001_schema(empty_db: Database) -> None:
    migrate.upgrade(empty_db, "0001")
    fresh = _schema(empty_db)
    migrate.upgrade(empty_db, "0002")
    migrate.downgrade(empty_db, "0001")
    empty_db.dispose()
    assert _schema(empty_db) == fresh


# Tests that break the schema work on a database of their own, never the shared one.


@pytest.fixture
def own_db(empty_db: Database) -> Database:
    migrate.upgrade(empty_db)
    return empty_db


def test_check_names_an_index_dropped_by_hand(own_db: Database) -> None:
    db = own_db
    assert migrate.check(db).ok
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_conversations_tenant_id_status_last_activity_at_id")
        conn.exec_driver_sql("DROP INDEX uq_messages_inbox_external")
    report = migrate.check(db)
    assert not report.ok
    assert report.revision == report.head  # the revision is right; the schema is not
    assert sorted(report.differences) == [
        "missing index ix_conversations_tenant_id_status_last_activity_at_id on conversations",
        "missing index uq_messages_inbox_external on messages",
    ]


def test_check_names_a_table_dropped_by_hand(own_db: Database) -> None:
    db = own_db
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE summaries")
    assert migrate.check(db).differences == ["missing table summaries"]


def test_check_names_a_column_dropped_and_an_extra_table(own_db: Database) -> None:
    db = own_db
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE suggestions DROP COLUMN feedback")
        conn.exec_driver_sql("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    report = migrate.check(db)
    assert sorted(report.differences) == [
        "extra table stray",
        "missing column suggestions.feedback",
    ]


def test_check_names_check_constraints_that_drifted(own_db: Database) -> None:
    db = own_db
    with db.engine.begin() as conn:
        if db.dialect == "sqlite":  # SQLite cannot alter a constraint: edit the stored DDL
            conn.exec_driver_sql("PRAGMA writable_schema=ON")
            conn.exec_driver_sql(
                "UPDATE sqlite_master SET sql = replace(sql, '''escalated'', ', '') "
                "WHERE name = 'conversations'"
            )
            conn.exec_driver_sql(
                "UPDATE sqlite_master SET sql = replace(sql, 'ck_summaries_seq_range', "
                "'ck_summaries_renamed') WHERE name = 'summaries'"
            )
            conn.exec_driver_sql("PRAGMA writable_schema=OFF")
        else:
            conn.exec_driver_sql(
                "ALTER TABLE conversations DROP CONSTRAINT ck_conversations_conversation_status"
            )
            conn.exec_driver_sql(
                "ALTER TABLE conversations ADD CONSTRAINT ck_conversations_conversation_status "
                "CHECK (status IN ('active', 'needs_reply', 'waiting', 'archived'))"
            )
            conn.exec_driver_sql(
                "ALTER TABLE summaries RENAME CONSTRAINT ck_summaries_seq_range "
                "TO ck_summaries_renamed"
            )
    db.dispose()  # SQLite connections cache the schema they read
    assert sorted(migrate.check(db).differences) == [
        "changed check constraint ck_conversations_conversation_status on conversations: "
        "allows ['active', 'archived', 'needs_reply', 'waiting'] in the database, "
        "['active', 'archived', 'escalated', 'needs_reply', 'waiting'] in the models",
        "extra check constraint ck_summaries_renamed on summaries",
        "missing check constraint ck_summaries_seq_range on summaries",
    ]


def test_check_reports_a_database_behind_head(own_db: Database) -> None:
    db = own_db
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old'")
    report = migrate.check(db)
    assert report.differences == []
    assert report.revision == "old"
    assert not report.ok


# --- enum CHECK constraints ------------------------------------------------------------------

ENUM_COLUMNS = [
    (table.name, column.name)
    for table in Base.metadata.sorted_tables
    for column in table.columns
    if isinstance(column.type, sa.Enum)
]


def test_every_enum_column_is_listed() -> None:
    # guards the parametrisation below against silently testing nothing
    assert ("messages", "role") in ENUM_COLUMNS
    assert ("conversations", "status") in ENUM_COLUMNS
    assert len(ENUM_COLUMNS) >= 14


class RowFactory:
    """Valid rows for any table, inserted with plain SQL (no ORM validation on the way)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.counter = itertools.count(1)
        self.parents: dict[str, Any] = {}

    def values(self, table: sa.Table) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = next(self.counter)
        # a parent of its own where the parent is unique (one delivery per message)
        unique = {
            c.name
            for u in table.constraints
            if isinstance(u, sa.UniqueConstraint)
            for c in u.columns
            if c.name != "tenant_id"
        }
        for col in table.columns:
            fks = list(col.foreign_keys)
            if col.primary_key:
                out[col.name] = uuid.uuid4()
            elif fks:
                if col.nullable:
                    out[col.name] = None
                else:
                    out[col.name] = self.parent(fks[0].column.table, own=col.name in unique)
            elif col.nullable:
                out[col.name] = None
            elif isinstance(col.type, sa.Enum):
                out[col.name] = col.type.enums[0]
            elif isinstance(col.type, UTCDateTime):
                out[col.name] = utcnow()
            elif isinstance(col.type, sa.Boolean):
                out[col.name] = False
            elif isinstance(col.type, sa.Integer):
                out[col.name] = n
            elif isinstance(col.type, sa.JSON) or col.type is JSONType:
                out[col.name] = {}
            elif isinstance(col.type, sa.String):
                out[col.name] = f"v{n}-{uuid.uuid4().hex[:8]}"
            else:  # pragma: no cover - a new column type: teach the factory
                raise AssertionError(f"no value for {table.name}.{col.name} ({col.type!r})")
        return out

    def insert(self, table: sa.Table, values: dict[str, Any]) -> None:
        names = list(values)
        params = []
        for name in names:
            col = table.c[name]
            kind = sa.String() if isinstance(col.type, sa.Enum) else col.type
            params.append(sa.bindparam(name, type_=kind))
        sql = sa.text(
            f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + n for n in names)})"
        ).bindparams(*params)
        with self.db.engine.begin() as conn:
            conn.execute(sql, values)

    def parent(self, table: sa.Table, own: bool = False) -> uuid.UUID:
        if own or table.name not in self.parents:
            values = self.values(table)
            self.insert(table, values)
            self.parents[table.name] = values["id"]
        return self.parents[table.name]  # type: ignore[no-any-return]


def _is_check_violation(exc: IntegrityError, constraint: str) -> bool:
    text = str(exc.orig)
    failed = "CHECK constraint failed" in text or "violates check constraint" in text
    return failed and constraint in text


@pytest.mark.parametrize(("table_name", "column"), ENUM_COLUMNS)
def test_enum_check_constraint_rejects_a_bad_value(
    db: Database, table_name: str, column: str
) -> None:
    table = Base.metadata.tables[table_name]
    rows = RowFactory(db)
    good = rows.values(table)
    enum: sa.Enum = table.c[column].type  # type: ignore[assignment]
    for value in enum.enums:
        row = rows.values(table) | {column: value}
        if value == "tool":  # a tool message needs its call id (another check)
            row["tool_call_id"] = "call_1"
        rows.insert(table, row)  # every declared value is accepted
    rows.insert(table, good)

    bad = rows.values(table) | {column: "bogus"}
    with pytest.raises(IntegrityError) as info:
        rows.insert(table, bad)
    assert _is_check_violation(info.value, f"ck_{table_name}_{enum.name}"), info.value

    with db.engine.connect() as conn:
        stored = conn.execute(sa.text(f"SELECT {column} FROM {table_name}")).scalars().all()
    assert "bogus" not in stored


def test_other_check_constraints_hold(db: Database) -> None:
    rows = RowFactory(db)
    conv = Base.metadata.tables["conversations"]
    for bad in (
        {"satisfaction_score": 11},
        {"satisfaction_score": 0},
        {"message_count": -1},
        {"last_seq": -1},
    ):
        with pytest.raises(IntegrityError):
            rows.insert(conv, rows.values(conv) | bad)
    rows.insert(conv, rows.values(conv) | {"satisfaction_score": 10})
    msg = Base.metadata.tables["messages"]
    with pytest.raises(IntegrityError):
        rows.insert(msg, rows.values(msg) | {"seq": 0})
    with pytest.raises(IntegrityError):
        rows.insert(msg, rows.values(msg) | {"role": "tool", "tool_call_id": None})
    rows.insert(msg, rows.values(msg) | {"role": "tool", "tool_call_id": "call_1"})


# --- foreign keys -----------------------------------------------------------------------------

FOREIGN_KEYS = sorted(
    (fk.parent.table.name, fk.parent.name, fk.column.table.name, fk.ondelete)
    for table in Base.metadata.sorted_tables
    for fk in table.foreign_keys
)


def test_every_foreign_key_has_its_designed_on_delete_rule(db: Database) -> None:
    inspector = sa.inspect(db.engine)
    live = sorted(
        (
            table,
            fk["constrained_columns"][0],
            fk["referred_table"],
            (fk.get("options") or {}).get("ondelete"),
        )
        for table in TABLES
        for fk in inspector.get_foreign_keys(table)
    )
    normalise = [(t, c, r, (o or "NO ACTION").upper()) for t, c, r, o in live]
    assert normalise == [(t, c, r, (o or "NO ACTION").upper()) for t, c, r, o in FOREIGN_KEYS]
    # every tenant-owned row goes with its tenant; nothing dangles from a deleted contact
    assert ("conversations", "contact_id", "contacts", "CASCADE") in FOREIGN_KEYS
    assert ("messages", "conversation_id", "conversations", "CASCADE") in FOREIGN_KEYS
    assert all(o == "CASCADE" for t, c, r, o in FOREIGN_KEYS if c == "tenant_id")
    # what is kept beside a message goes with it; a model call outlives the message it made
    for fk in [
        ("message_deliveries", "message_id", "messages", "CASCADE"),
        ("message_deliveries", "inbox_id", "inboxes", "SET NULL"),
        ("message_moderation", "message_id", "messages", "CASCADE"),
        ("model_calls", "conversation_id", "conversations", "CASCADE"),
        ("model_calls", "message_id", "messages", "SET NULL"),
        ("model_calls", "agent_id", "agents", "SET NULL"),
    ]:
        assert fk in FOREIGN_KEYS


def make_data(db: Database) -> dict[str, Any]:
    """A tenant with an inbox, a contact and a conversation holding two messages."""
    tenant = tenants.create_tenant(db, f"t-{uuid.uuid4().hex[:8]}")
    with db.write() as s:
        inbox = Inbox(
            provider="twilio",
            tenant_id=tenant.id,
            channel=Channel.SMS,
            name="main",
            address="+14155550199",
            mode=InboxMode.APPROVAL,
            settings={},
        )
        s.add(inbox)
    contact = contacts.create(db, tenant.id, {"name": "Ada", "phone": "+14155550100"})
    conv = conversations.create(db, tenant.id, {"contact_id": contact.id, "inbox_id": inbox.id})
    messages.append(
        db,
        tenant.id,
        conv.id,
        [
            {"role": "user", "content": "hi", "external_message_id": "SM1"},
            {"role": "assistant", "content": "hello"},
        ],
    )
    return {
        "tenant_id": tenant.id,
        "inbox_id": inbox.id,
        "contact_id": contact.id,
        "conversation_id": conv.id,
    }


def _count(db: Database, table: str, conversation_id: uuid.UUID | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(sa.table(table))
    if conversation_id is not None:
        q = q.where(sa.column("conversation_id") == sa.bindparam("c", type_=sa.Uuid()))
    with db.engine.connect() as conn:
        return int(conn.execute(q, {"c": conversation_id}).scalar_one())


def _delete(db: Database, table: str, row_id: uuid.UUID) -> None:
    sql = sa.text(f"DELETE FROM {table} WHERE id = :id").bindparams(
        sa.bindparam("id", type_=sa.Uuid())
    )
    with db.engine.begin() as conn:
        conn.execute(sql, {"id": row_id})


def test_deleting_a_contact_deletes_its_conversations_and_messages(db: Database) -> None:
    d = make_data(db)
    other = make_data(db)
    assert _count(db, "messages") == 4
    assert _count(db, "conversation_events") > 0

    _delete(db, "contacts", d["contact_id"])  # plain SQL: the database does the cascading

    assert _count(db, "conversations") == 1
    assert _count(db, "messages", d["conversation_id"]) == 0
    assert _count(db, "conversation_events", d["conversation_id"]) == 0
    assert _count(db, "contact_identities") == 1
    assert _count(db, "messages", other["conversation_id"]) == 2


def test_deleting_a_message_deletes_its_delivery_and_moderation_and_keeps_its_model_call(
    db: Database,
) -> None:
    d = make_data(db)
    with db.read() as s:
        message_id = s.scalars(
            sa.select(Message.id).where(Message.conversation_id == d["conversation_id"])
        ).first()
    assert message_id is not None
    with db.write() as s:
        common = {"tenant_id": d["tenant_id"], "message_id": message_id}
        s.add(MessageDelivery(**common, status=DeliveryStatus.QUEUED, inbox_id=d["inbox_id"]))
        s.add(MessageModeration(**common, is_flagged=True))
        s.add(ModelCall(**common, conversation_id=d["conversation_id"], purpose="reply"))

    _delete(db, "messages", message_id)

    assert _count(db, "message_deliveries") == 0
    assert _count(db, "message_moderation") == 0
    with db.engine.connect() as conn:
        call = conn.execute(sa.text("SELECT message_id, purpose FROM model_calls")).one()
    assert tuple(call) == (None, "reply")

    _delete(db, "contacts", d["contact_id"])  # and the call goes with its conversation
    assert _count(db, "model_calls") == 0


def test_a_model_call_needs_no_message_and_one_message_has_at_most_one(db: Database) -> None:
    d = make_data(db)
    with db.read() as s:
        message_id = s.scalars(sa.select(Message.id)).first()
    with db.write() as s:  # calls that made no message: any number
        for purpose in ("score", "summary", "suggestion"):
            s.add(ModelCall(tenant_id=d["tenant_id"], purpose=purpose))
        s.add(ModelCall(tenant_id=d["tenant_id"], message_id=message_id, purpose="reply"))
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(ModelCall(tenant_id=d["tenant_id"], message_id=message_id, purpose="reply"))
    assert _count(db, "model_calls") == 4


def test_a_message_has_at_most_one_delivery(db: Database) -> None:
    d = make_data(db)
    with db.read() as s:
        message_id = s.scalars(sa.select(Message.id)).first()
    row = {"tenant_id": d["tenant_id"], "message_id": message_id}
    with db.write() as s:
        s.add(MessageDelivery(**row, status=DeliveryStatus.QUEUED))
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(MessageDelivery(**row, status=DeliveryStatus.SENT))
    with db.read() as s:
        delivery = s.scalars(sa.select(MessageDelivery)).one()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.QUEUED, 0)


def test_deleting_an_inbox_keeps_its_conversations_and_messages(db: Database) -> None:
    d = make_data(db)
    _delete(db, "inboxes", d["inbox_id"])
    with db.engine.connect() as conn:
        inbox_ids = conn.execute(sa.text("SELECT inbox_id FROM messages")).scalars().all()
        conv_inbox = conn.execute(sa.text("SELECT inbox_id FROM conversations")).scalar_one()
    assert inbox_ids == [None, None]
    assert conv_inbox is None


def test_deleting_a_tenant_deletes_everything_it_owns(db: Database) -> None:
    d = make_data(db)
    other = make_data(db)
    _delete(db, "tenants", d["tenant_id"])
    for table in ("contacts", "contact_identities", "conversations", "inboxes"):
        assert _count(db, table) == 1, table
    assert _count(db, "messages") == 2
    assert _count(db, "messages", other["conversation_id"]) == 2


def test_a_message_cannot_point_at_a_missing_conversation(db: Database) -> None:
    rows = RowFactory(db)
    msg = Base.metadata.tables["messages"]
    with pytest.raises(IntegrityError):
        rows.insert(msg, rows.values(msg) | {"conversation_id": uuid.uuid4()})


# --- unique orderings and idempotency keys ----------------------------------------------------


def _insert_message(db: Database, d: dict[str, Any], seq: int, **extra: Any) -> None:
    row = {
        "id": uuid.uuid4(),
        "tenant_id": d["tenant_id"],
        "conversation_id": d["conversation_id"],
        "inbox_id": d["inbox_id"],
        "seq": seq,
        "role": "user",
        "sender_type": "contact",
        "direction": "inbound",
        "message_type": "text",
        "content": "x",
        "metadata": {},
        "occurred_at": utcnow(),
        "created_at": utcnow(),
    } | extra
    RowFactory(db).insert(Message.__table__, row)  # type: ignore[arg-type]


def _second_conversation(db: Database, d: dict[str, Any]) -> dict[str, Any]:
    conv = conversations.create(
        db, d["tenant_id"], {"contact_id": d["contact_id"], "inbox_id": d["inbox_id"]}
    )
    return d | {"conversation_id": conv.id}


def test_messages_are_unique_on_conversation_and_seq(db: Database) -> None:
    d = make_data(db)
    with pytest.raises(IntegrityError):
        _insert_message(db, d, seq=2)
    _insert_message(db, d, seq=3)
    _insert_message(db, _second_conversation(db, d), seq=2)  # another conversation may
    assert _count(db, "messages", d["conversation_id"]) == 3


def test_messages_are_unique_on_inbox_and_external_id(db: Database) -> None:
    d = make_data(db)
    other_conversation = _second_conversation(db, d)
    # the same provider id in the same inbox is the same message, whatever the conversation
    with pytest.raises(IntegrityError):
        _insert_message(db, other_conversation, seq=1, external_message_id="SM1")
    _insert_message(db, other_conversation, seq=1, external_message_id="SM2")
    # many messages may have no external id
    _insert_message(db, other_conversation, seq=2)
    _insert_message(db, other_conversation, seq=3)


def test_external_id_may_repeat_across_inboxes(db: Database) -> None:
    d = make_data(db)
    with db.write() as s:
        inbox = Inbox(
            provider="twilio",
            tenant_id=d["tenant_id"],
            channel=Channel.SMS,
            name="second",
            address="+14155550198",
            mode=InboxMode.APPROVAL,
            settings={},
        )
        s.add(inbox)
    conv = conversations.create(db, d["tenant_id"], {"inbox_id": inbox.id})
    _insert_message(
        db, d | {"conversation_id": conv.id, "inbox_id": inbox.id}, 1, external_message_id="SM1"
    )


def test_without_an_inbox_external_ids_are_unique_per_conversation(db: Database) -> None:
    d = make_data(db)
    no_inbox = d | {"inbox_id": None}
    first = conversations.create(db, d["tenant_id"], {"contact_id": d["contact_id"]})
    second = conversations.create(db, d["tenant_id"], {"contact_id": d["contact_id"]})
    _insert_message(db, no_inbox | {"conversation_id": first.id}, 1, external_message_id="E1")
    _insert_message(db, no_inbox | {"conversation_id": second.id}, 1, external_message_id="E1")
    with pytest.raises(IntegrityError):
        _insert_message(db, no_inbox | {"conversation_id": first.id}, 2, external_message_id="E1")
