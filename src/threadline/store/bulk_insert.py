"""Bulk inserts: compiled once per dialect and column set, run on the driver's executemany.

A batch import writes thousands of message rows per request. SQLAlchemy's per-execution
machinery (execution context, per-row parameter processing) costs several times what the
database spends on the rows themselves, so for INSERTs alone a ``BulkInsert`` keeps what
matters from SQLAlchemy and skips the rest:

- the SQL text is SQLAlchemy's own compilation of the Core INSERT for the connection's
  dialect (casts, quoting and parameter style included);
- every value goes through the ``bind_processor`` of its column type's implementation for
  that dialect, so rows are written exactly as the rest of the store writes them;
- driver errors are raised as SQLAlchemy's exception classes (``IntegrityError``,
  ``OperationalError`` ...), with parameters hidden, as the engine would raise them.

Everything else (reads, updates, the key lookup) goes through plain Core, keeping
SQLAlchemy's events, logging and disconnect handling.

Rows name only their non-null columns (most of a message's columns are empty, and SQLite's
cost per row grows with every bound value), so an INSERT is compiled once per set of columns.
Those compiled forms are kept in a small LRU cache: a client sending every combination of
optional fields costs compile time, never unbounded memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from threading import Lock
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any]

#: Compiled forms kept per statement. A batch uses a handful; the API's optional fields allow
#: thousands of combinations, which would otherwise each stay in memory for good.
CACHE_SIZE = 64


class CompiledInsert:
    """One INSERT compiled for one dialect and one set of columns."""

    __slots__ = ("binds", "dbapi_error", "dialect", "positional", "shared", "sql")

    def __init__(self, statement: sa.Insert, dialect: Dialect, columns: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.sql: str = compiled.string
        self.dialect = dialect
        self.positional: bool = compiled.positional
        names = (compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        self.binds: list[tuple[str, Processor | None]] = []
        # Values of immutable types may share one conversion; JSON values (dicts, lists) not.
        self.shared: dict[str, bool] = {}
        for name in names:
            type_ = compiled.binds[name].type.dialect_impl(dialect)
            self.binds.append((name, type_.bind_processor(dialect)))
            self.shared[name] = not isinstance(type_, sa.JSON)
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Parameters for ``executemany``, column by column: a batch repeats its tenant,
        conversation, timestamps and enum values, and each distinct one is converted once."""
        columns: list[list[Any]] = []
        for name, process in self.binds:
            column = [row[name] for row in rows]
            if process is not None:
                if self.shared[name]:
                    seen: dict[Any, Any] = {}
                    column = [
                        seen[raw] if raw in seen else seen.setdefault(raw, process(raw))
                        for raw in column
                    ]
                else:
                    column = [process(raw) for raw in column]
            columns.append(column)
        if self.positional:
            return list(zip(*columns, strict=True))
        names = [name for name, _ in self.binds]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]

    @contextmanager
    def cursor(self, conn: sa.Connection) -> Iterator[Any]:
        """A driver cursor on ``conn``, closed afterwards; driver errors are raised as
        SQLAlchemy's, with parameters hidden."""
        cursor = conn.connection.cursor()
        try:
            yield cursor
        except self.dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(
                self.sql, None, exc, self.dbapi_error, hide_parameters=True, dialect=self.dialect
            ) from exc
        finally:
            cursor.close()


class BulkInsert:
    """A Core INSERT run with the driver's ``executemany``, on an ``sa.Connection``'s
    transaction. Only INSERTs: anything else is refused when it is built."""

    __slots__ = ("_forms", "_lock", "statement")

    def __init__(self, statement: sa.Insert) -> None:
        if not isinstance(statement, sa.Insert):
            raise TypeError(f"BulkInsert runs INSERT statements only, not {type(statement)}")
        self.statement = statement
        self._forms: OrderedDict[tuple[str, str, tuple[str, ...]], CompiledInsert] = OrderedDict()
        self._lock = Lock()

    def _form(self, conn: sa.Connection, columns: tuple[str, ...]) -> CompiledInsert:
        key = (conn.dialect.name, conn.dialect.driver, columns)
        with self._lock:
            form = self._forms.get(key)
            if form is not None:
                self._forms.move_to_end(key)
                return form
        form = CompiledInsert(self.statement, conn.dialect, columns)
        with self._lock:
            self._forms[key] = form
            while len(self._forms) > CACHE_SIZE:
                self._forms.popitem(last=False)
        return form

    def run(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert ``rows``; each names the same columns. Answers the row count."""
        if not rows:
            return 0
        form = self._form(conn, tuple(rows[0]))
        with form.cursor(conn) as cursor:
            cursor.executemany(form.sql, form.parameters(rows))
            return int(cursor.rowcount)

    def run_grouped(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert ``rows`` naming only each one's non-null columns; rows with the same
        columns go in one ``executemany``."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            present = {k: v for k, v in row.items() if v is not None}
            groups.setdefault(tuple(present), []).append(present)
        return sum(self.run(conn, group) for group in groups.values())

    def cached_forms(self) -> int:
        return len(self._forms)
