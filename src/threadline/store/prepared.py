"""Hot statements: built with SQLAlchemy Core, compiled once per dialect, run on the driver.

The append, read and authentication paths run a handful of small statements many times a
second. For those, SQLAlchemy's per-execution machinery (execution context, result object,
row processing, events) costs several times what SQLite spends on the query itself. A
``Prepared`` statement keeps everything that matters from SQLAlchemy and skips the rest:

- the SQL text is SQLAlchemy's own compilation of a Core statement, for the connection's
  dialect (casts, quoting and parameter style included);
- every value goes through the ``bind_processor`` and ``result_processor`` of its column
  type's implementation for that dialect, so rows are written and read exactly as the rest
  of the store writes and reads them;
- driver errors are raised as SQLAlchemy's exception classes (``IntegrityError``,
  ``OperationalError`` ...), with parameters hidden, as the engine would raise them.

It runs on the DBAPI connection under an ``sa.Connection``, so it shares that connection's
transaction with ordinary ``conn.execute`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any]


class _Form:
    """One statement compiled for one dialect (and, for an INSERT, one set of columns)."""

    __slots__ = (
        "binds",
        "dbapi_error",
        "dialect",
        "fixed",
        "keys",
        "positional",
        "results",
        "shared",
        "sql",
        "types",
    )

    def __init__(
        self, statement: sa.Executable, dialect: Dialect, column_keys: Sequence[str] | None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self.dialect = dialect
        self.positional: bool = compiled.positional
        names = (compiled.positiontup or []) if compiled.positional else list(compiled.binds)
        # Values the statement carries itself (such as SQLite's ``OFFSET 0``) fill in the
        # parameters a caller does not name.
        self.binds: list[tuple[str, Processor | None]] = []
        self.fixed: dict[str, Any] = {}
        # Values of immutable types may share one conversion; JSON values (dicts, lists) not.
        self.shared: dict[str, bool] = {}
        for name in names:
            bind = compiled.binds[name]
            type_ = bind.type.dialect_impl(dialect)
            self.binds.append((name, type_.bind_processor(dialect)))
            self.shared[name] = not isinstance(type_, sa.JSON)
            if not bind.required:
                self.fixed[name] = bind.effective_value
        self.keys: tuple[str, ...] = ()
        self.types: list[sa.types.TypeEngine[Any]] = []
        if isinstance(statement, sa.Select):
            columns = list(statement.selected_columns)
            self.keys = tuple(statement.selected_columns.keys())
            self.types = [c.type.dialect_impl(dialect) for c in columns]
        # Some result processors depend on the driver's type code (PostgreSQL numerics), so
        # they are chosen from the first result's cursor description.
        self.results: list[tuple[int, Processor, bool]] | None = None
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error

    def many(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Parameters for ``executemany``, column by column: a batch repeats its tenant,
        conversation, timestamps and enum values, and each distinct one is converted once."""
        columns: list[list[Any]] = []
        for name, process in self.binds:
            if name in self.fixed and name not in rows[0]:
                column = [self.fixed[name]] * len(rows)
            else:
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

    def params(self, values: Mapping[str, Any]) -> Any:
        if self.fixed:
            values = self.fixed | dict(values)
        bound = [
            (name, values[name] if process is None else process(values[name]))
            for name, process in self.binds
        ]
        if self.positional:
            return tuple(value for _, value in bound)
        return dict(bound)

    def _processors(self, description: Sequence[Any]) -> list[tuple[int, Processor, bool]]:
        results: list[tuple[int, Processor, bool]] = []
        for i, type_ in enumerate(self.types):
            process = type_.result_processor(self.dialect, description[i][1])
            if process is not None:
                # JSON decodes to mutable values: each row gets its own.
                results.append((i, process, not isinstance(type_, sa.JSON)))
        return results

    def typed(
        self, rows: Sequence[Sequence[Any]], description: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """Rows as dicts of typed values. Column by column, each distinct raw value of an
        immutable type is converted once: a page repeats its tenant, conversation and batch
        timestamps."""
        if not rows:
            return []
        if self.results is None:
            self.results = self._processors(description)
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i, process, shared in self.results:
            column = columns[i]
            if column.count(None) == len(column):
                continue
            if not shared:
                columns[i] = [None if raw is None else process(raw) for raw in column]
                continue
            seen: dict[Any, Any] = {None: None}
            columns[i] = [
                seen[raw] if raw in seen else seen.setdefault(raw, process(raw)) for raw in column
            ]
        keys = self.keys
        return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]

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


class Prepared:
    """A Core statement with named ``bindparam``s (or an INSERT), run straight on the driver.

    ``all`` and ``one_or_none`` answer rows as dicts of typed values; ``run`` and ``run_many``
    execute and answer the row count.
    """

    __slots__ = ("_forms", "statement")

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._forms: dict[tuple[str, str, tuple[str, ...] | None], _Form] = {}

    def _form(self, conn: sa.Connection, column_keys: tuple[str, ...] | None = None) -> _Form:
        key = (conn.dialect.name, conn.dialect.driver, column_keys)
        form = self._forms.get(key)
        if form is None:
            form = self._forms[key] = _Form(self.statement, conn.dialect, column_keys)
        return form

    def all(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        form = self._form(conn)
        with form.cursor(conn) as cursor:
            cursor.execute(form.sql, form.params(params))
            rows = cursor.fetchall()
            description = cursor.description
        return form.typed(rows, description)

    def one_or_none(self, conn: sa.Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        rows = self.all(conn, params)
        if len(rows) > 1:
            raise sa.exc.MultipleResultsFound("expected at most one row")
        return rows[0] if rows else None

    def run(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Execute once; an INSERT names exactly the keys of ``params``."""
        form = self._form(conn, tuple(params) if isinstance(self.statement, sa.Insert) else None)
        with form.cursor(conn) as cursor:
            cursor.execute(form.sql, form.params(params))
            return int(cursor.rowcount)

    def run_many(
        self, conn: sa.Connection, column_keys: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
    ) -> int:
        """Execute once per row: an INSERT of ``column_keys``, which every row holds."""
        form = self._form(conn, column_keys)
        with form.cursor(conn) as cursor:
            cursor.executemany(form.sql, form.many(rows))
            return int(cursor.rowcount)
