"""Rules the whole schema keeps: every foreign key indexed, every index led by tenant_id.

Deleting a row makes the database look up the rows that point at it (``WHERE fk = ?``) to
cascade or null them, once per deleted row; without an index that leads with the foreign
key's column, deleting a contact with a long history scans the message tables again and
again while holding the write lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from threadline.store import Database, migrate
from threadline.store.models import Base

ForeignKeys = dict[str, list[tuple[str, ...]]]
Indexes = dict[str, list[tuple[str, ...]]]


def unindexed_foreign_keys(foreign_keys: ForeignKeys, indexes: Indexes) -> list[str]:
    """``table.columns`` of every foreign key that no index leads with."""
    missing = []
    for table, fks in sorted(foreign_keys.items()):
        for columns in sorted(fks):
            if not any(index[: len(columns)] == columns for index in indexes.get(table, [])):
                missing.append(f"{table}.{','.join(columns)}")
    return missing


def _model_schema() -> tuple[ForeignKeys, Indexes]:
    fks: ForeignKeys = {}
    indexes: Indexes = {}
    for table in Base.metadata.sorted_tables:
        fks[table.name] = [
            tuple(c.name for c in fk.columns)
            for fk in table.constraints
            if isinstance(fk, sa.ForeignKeyConstraint)
        ]
        led = [tuple(c.name for c in ix.columns) for ix in table.indexes]
        led += [
            tuple(c.name for c in con.columns)
            for con in table.constraints
            if isinstance(con, sa.UniqueConstraint | sa.PrimaryKeyConstraint)
        ]
        indexes[table.name] = led
    return fks, indexes


def _live_schema(db: Database) -> tuple[ForeignKeys, Indexes]:
    inspector = sa.inspect(db.engine)
    fks: ForeignKeys = {}
    indexes: Indexes = {}
    for table in set(inspector.get_table_names()) - {"alembic_version"}:
        fks[table] = [tuple(fk["constrained_columns"]) for fk in inspector.get_foreign_keys(table)]
        led: list[tuple[str, ...]] = [
            tuple(c for c in ix["column_names"] if c is not None)
            for ix in inspector.get_indexes(table)
        ]
        led += [tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)]
        led.append(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
        indexes[table] = led
    return fks, indexes


def test_every_foreign_key_in_the_models_has_an_index_that_leads_with_it() -> None:
    assert unindexed_foreign_keys(*_model_schema()) == []


def test_the_rule_sees_an_index_led_by_tenant_id_as_no_index() -> None:
    fks = {"messages": [("tenant_id",), ("conversation_id",)]}
    indexes = {"messages": [("tenant_id", "conversation_id", "seq"), ("id",)]}
    assert unindexed_foreign_keys(fks, indexes) == ["messages.conversation_id"]


@pytest.fixture
def empty_db(empty_db_url: str) -> Iterator[Database]:
    database = Database.from_url(empty_db_url)
    yield database
    database.dispose()


def test_every_foreign_key_is_indexed_in_a_migrated_database(empty_db: Database) -> None:
    migrate.upgrade(empty_db, "0001")
    # the first schema left the lookups that deletes make unindexed: the defect this fixes
    before = unindexed_foreign_keys(*_live_schema(empty_db))
    for fk in (
        "messages.conversation_id",
        "messages.parent_message_id",
        "action_logs.message_id",
        "suggestions.in_reply_to_message_id",
        "suggestions.sent_message_id",
        "message_status_events.message_id",
    ):
        assert fk in before

    migrate.upgrade(empty_db)
    assert unindexed_foreign_keys(*_live_schema(empty_db)) == []


# --- the plans the database makes for the lookups behind a delete --------------------------

FOREIGN_KEYS = sorted(
    {
        (table.name, fk.columns[0].name)
        for table in Base.metadata.sorted_tables
        for fk in table.constraints
        if isinstance(fk, sa.ForeignKeyConstraint)
    }
)


FOREIGN_KEY_TARGETS = sorted(
    {
        (table.name, fk.referred_table.name)
        for table in Base.metadata.sorted_tables
        for fk in table.constraints
        if isinstance(fk, sa.ForeignKeyConstraint)
    }
)


def test_foreign_keys_are_single_columns() -> None:
    # the plan tests below look up one column per foreign key
    assert all(
        len(fk.columns) == 1
        for table in Base.metadata.sorted_tables
        for fk in table.constraints
        if isinstance(fk, sa.ForeignKeyConstraint)
    )
    assert ("messages", "parent_message_id") in FOREIGN_KEYS
    assert ("message_deliveries", "message_id") in FOREIGN_KEYS


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("plans") / "plans.db"
    database = Database.from_url(f"sqlite:///{path}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def _sqlite_plan(db: Database, sql: str, params: Iterable[object]) -> str:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(params)).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(("table", "column"), FOREIGN_KEYS)
def test_sqlite_finds_the_rows_of_a_foreign_key_through_an_index(
    sqlite_db: Database, table: str, column: str
) -> None:
    # the statement SQLite runs for ON DELETE CASCADE, with the key as a parameter
    plan = _sqlite_plan(sqlite_db, f"DELETE FROM {table} WHERE {column} = ?", [uuid.uuid4().hex])
    assert plan.startswith(f"SEARCH {table} USING "), plan
    assert f"({column}=?)" in plan, plan
    assert "SCAN" not in plan, plan


@pytest.mark.parametrize(
    "table", ["tenants", "contacts", "conversations", "messages", "inboxes", "agents", "users"]
)
def test_sqlite_deletes_a_row_and_all_it_cascades_to_without_a_scan(
    sqlite_db: Database, table: str
) -> None:
    # SQLite's plan for a delete shows the lookups of the rows that point at the deleted one
    # (one level: the next level is each child table's own delete, tested above)
    plan = _sqlite_plan(sqlite_db, f"DELETE FROM {table} WHERE id = ?", [uuid.uuid4().hex])
    assert "SCAN" not in plan, plan
    lookups = {line.split(" USING ")[0] for line in plan.splitlines() if line.startswith("SEARCH")}
    referring = {f"SEARCH {t}" for t, c in FOREIGN_KEY_TARGETS if c == table} | {f"SEARCH {table}"}
    assert lookups == referring, plan


@pytest.fixture(scope="module")
def pg_db(pg_migrated_url: sa.URL) -> Iterator[Database]:
    database = Database.from_url(pg_migrated_url)
    yield database
    database.dispose()


@pytest.mark.parametrize(("table", "column"), FOREIGN_KEYS)
def test_postgresql_can_find_the_rows_of_a_foreign_key_through_an_index(
    pg_db: Database, table: str, column: str
) -> None:
    # PostgreSQL's referential actions run prepared statements with a generic plan, where a
    # partial index's ``IS NOT NULL`` must be proven from ``column = $1`` alone. On empty
    # tables a sequential scan is cheapest, so it is priced out of the comparison.
    with pg_db.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE lookup(uuid) AS SELECT 1 FROM {table} WHERE {column} = $1")
        plan = "\n".join(
            r[0] for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE lookup('{uuid.uuid4()}')")
        )
        conn.exec_driver_sql("DEALLOCATE lookup")
        conn.rollback()
    assert "Index" in plan and "Seq Scan" not in plan, plan


# --- every index leads with tenant_id, with the documented exceptions ----------------------

#: Global lookups that find the tenant, and cross-tenant maintenance and work queues.
CROSS_TENANT = {
    "uq_tenants_slug",
    "uq_api_keys_key_hash",
    "ix_message_deliveries_due",
    "ix_agent_jobs_due",
    "ix_webhook_deliveries_due",
    "ix_idempotency_keys_created_at",
    "ix_events_created_at",
}


def test_every_index_leads_with_tenant_id_or_is_a_documented_exception() -> None:
    fk_columns = {(t, c) for t, c in FOREIGN_KEYS}
    odd = []
    for table in Base.metadata.sorted_tables:
        named: list[tuple[str, list[str]]] = [
            (str(ix.name), [c.name for c in ix.columns]) for ix in table.indexes
        ]
        named += [
            (str(con.name), [c.name for c in con.columns])
            for con in table.constraints
            if isinstance(con, sa.UniqueConstraint)
        ]
        for name, columns in named:
            if columns[0] == "tenant_id" or name in CROSS_TENANT:
                continue
            if len(columns) == 1 and (table.name, columns[0]) in fk_columns:
                continue  # a foreign-key lookup
            odd.append(name)
    assert odd == []
