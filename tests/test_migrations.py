"""The schema as the migrations build it, on SQLite and PostgreSQL.

An empty database upgraded to head matches the models; down to base and up again works; the
constraints the models declare (enum checks, cascades, unique orderings and idempotency keys)
hold in the live database, tested with SQL that goes around the ORM.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from threadline.domain.enums import Channel, InboxMode
from threadline.store import Database, contacts, conversations, messages, migrate, tenants
from threadline.store.models import Base, Inbox, Message
from threadline.store.types import JSONType, UTCDateTime, utcnow

TABLES = {t.name for t in Base.metadata.sorted_tables}


@pytest.fixture
def empty_db(empty_db_url: str) -> Iterator[Database]:
    database = Database.from_url(empty_db_url)
    yield database
    database.dispose()


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


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
        for col in table.columns:
            fks = list(col.foreign_keys)
            if col.primary_key:
                out[col.name] = uuid.uuid4()
            elif fks:
                if col.nullable:
                    out[col.name] = None
                else:
                    out[col.name] = self.parent(fks[0].column.table)
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

    def parent(self, table: sa.Table) -> uuid.UUID:
        if table.name not in self.parents:
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
    for bad in ({"satisfaction_score": 11}, {"satisfaction_score": 0}, {"message_count": -1}):
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


def make_data(db: Database) -> dict[str, Any]:
    """A tenant with an inbox, a contact and a conversation holding two messages."""
    tenant = tenants.create_tenant(db, f"t-{uuid.uuid4().hex[:8]}")
    with db.write() as s:
        inbox = Inbox(
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
        "is_flagged": False,
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
