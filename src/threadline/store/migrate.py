"""Schema migrations (Alembic), driven from code so the installed package carries them.

``upgrade``, ``downgrade`` and ``current`` wrap Alembic's commands; ``check`` compares the
live database with the models and lists what is missing or extra, like a pre-deploy check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from threadline.store import search_schema
from threadline.store.database import Database
from threadline.store.models import Base

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _run(db: Database, fn: Any, *args: Any) -> None:
    with db.engine.connect() as conn:
        if db.dialect != "sqlite":
            with conn.begin():
                fn(_config(conn), *args)
            return
        # SQLite changes a table by building a new one and dropping the old, and dropping a
        # table with foreign keys on deletes its rows first, which cascades to (or nulls)
        # every row that points at them. So foreign keys are off while migrations run, as
        # SQLite's documented procedure for such changes says, and checked before the commit.
        # The pragma has no effect inside a transaction: it goes to the driver, in autocommit.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                fn(_config(conn), *args)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:10]}")
        finally:
            driver.execute("PRAGMA foreign_keys=ON")


def upgrade(db: Database, revision: str = "head") -> None:
    _run(db, command.upgrade, revision)


def downgrade(db: Database, revision: str = "-1") -> None:
    _run(db, command.downgrade, revision)


def head() -> str:
    script = ScriptDirectory.from_config(_config())
    rev = script.get_current_head()
    assert rev is not None
    return rev


def current(db: Database) -> str | None:
    """The database's revision, or None when it has no schema yet.

    Read straight from Alembic's version table: ``/readyz`` calls this on every probe, and
    building a migration context each time costs milliseconds and two log lines.
    """
    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def is_current(db: Database) -> bool:
    return current(db) == head()


@dataclass
class CheckReport:
    """What differs between the live schema and the models."""

    revision: str | None
    head: str
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.revision == self.head and not self.differences


def check(db: Database) -> CheckReport:
    """Compare the live schema with the models.

    Alembic compares tables, columns, types, indexes, unique constraints and foreign keys;
    CHECK constraints are compared here, by name, and for enum columns by the values they
    allow (an enum value added in code without a migration would otherwise fail at insert).
    """
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "target_metadata": Base.metadata,
                "include_object": search_schema.include_object,
            },
        )
        diffs = compare_metadata(ctx, Base.metadata)
        revision = ctx.get_current_revision()
        checks = _compare_checks(conn) + search_schema.differences(conn)
    return CheckReport(revision, head(), [_describe(d) for d in _flatten(diffs)] + checks)


_QUOTED = re.compile(r"'((?:[^']|'')*)'")


def _compare_checks(conn: sa.Connection) -> list[str]:
    inspector = sa.inspect(conn)
    live_tables = set(inspector.get_table_names())
    out: list[str] = []
    for table in Base.metadata.sorted_tables:
        if table.name not in live_tables:
            continue  # reported as a missing table
        expected = {str(c.name): c for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        enums = {
            f"ck_{table.name}_{col.type.name}": col.type
            for col in table.columns
            if isinstance(col.type, sa.Enum)
        }
        live: dict[str, str] = {
            str(c["name"]): c["sqltext"]
            for c in inspector.get_check_constraints(table.name)
            if c.get("name")
        }
        for name in sorted(expected.keys() - live.keys()):
            out.append(f"missing check constraint {name} on {table.name}")
        for name in sorted(live.keys() - expected.keys()):
            out.append(f"extra check constraint {name} on {table.name}")
        for name in sorted(expected.keys() & live.keys() & enums.keys()):
            allowed = {v.replace("''", "'") for v in _QUOTED.findall(live[name])}
            wanted = set(enums[name].enums)
            if allowed != wanted:
                out.append(
                    f"changed check constraint {name} on {table.name}: allows "
                    f"{sorted(allowed)} in the database, {sorted(wanted)} in the models"
                )
    return out


def _flatten(diffs: list[Any]) -> list[Any]:
    """One flat list, without the index lines of a table already reported missing or extra."""
    out: list[Any] = []
    for d in diffs:
        out.extend(d if isinstance(d, list) else [d])
    whole = {d[1].name for d in out if d[0] in ("add_table", "remove_table")}
    return [
        d for d in out if not (d[0] in ("add_index", "remove_index") and d[1].table.name in whole)
    ]


def _describe(diff: tuple[Any, ...]) -> str:
    kind = diff[0]
    if kind == "add_table":
        return f"missing table {diff[1].name}"
    if kind == "remove_table":
        return f"extra table {diff[1].name}"
    if kind == "add_column":
        return f"missing column {diff[2]}.{diff[3].name}"
    if kind == "remove_column":
        return f"extra column {diff[2]}.{diff[3].name}"
    if kind == "add_index":
        return f"missing index {diff[1].name} on {diff[1].table.name}"
    if kind == "remove_index":
        return f"extra index {diff[1].name} on {diff[1].table.name}"
    if kind == "add_constraint":
        return f"missing constraint {diff[1].name}"
    if kind == "remove_constraint":
        return f"extra constraint {diff[1].name}"
    if kind == "add_fk":
        return f"missing foreign key {diff[1].name} on {diff[1].table.name}"
    if kind == "remove_fk":
        return f"extra foreign key {diff[1].name} on {diff[1].table.name}"
    if kind.startswith("modify_"):
        return (
            f"changed {kind[7:]} of {diff[2]}.{diff[3]}: "
            f"{diff[5]!r} in the database, {diff[6]!r} in the models"
        )
    return repr(diff)
