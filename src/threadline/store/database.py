"""The two backends behind one small object.

``Database.from_url(url)`` builds the engine for SQLite (through ``pysqlite3``, which can
load extensions such as sqlite-vec) or PostgreSQL (through psycopg 3). Store functions take
a ``Database`` and open their own transaction:

- ``db.read()`` gives a session for queries;
- ``db.write()`` gives a session that holds the write lock from its first statement
  (``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL callers lock the rows they change with
  ``SELECT ... FOR UPDATE``) and commits when the block ends without error;
- ``db.connect()`` and ``db.transaction()`` are their Core counterparts (a plain connection,
  and one in such a write transaction), for hot paths that need no ORM;
- ``db.run_write(work)`` runs ``work(connection)`` in a write transaction and answers its
  result. On SQLite, concurrent calls share transactions and commits in arrival order
  (``store/writer.py``); on PostgreSQL each runs in its own transaction, since row locks let
  writers to different rows proceed at once.

On SQLite every write in this process, whichever of these it uses, takes one write turn, so
writers queue in arrival order instead of polling in SQLite's busy handler.

A write that returned has been committed: SQLite runs in WAL mode with ``synchronous=FULL``
by default, PostgreSQL with its own durable commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from threadline.store.writer import GroupCommit

if TYPE_CHECKING:
    from threadline.settings import Settings

_WRITE = "threadline_write"
T = TypeVar("T")


def _sqlite_module() -> Any:
    try:
        import pysqlite3.dbapi2 as module  # SQLite 3.51 with extension loading
    except ImportError:  # pragma: no cover - platforms without the wheel
        import sqlite3 as module
    return module


class Database:
    """An engine plus session factories for reading and writing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._group: GroupCommit | None = None
        if engine.dialect.name == "sqlite":
            self._group = GroupCommit(engine, self._begin_write)

    @classmethod
    def from_url(
        cls,
        url: str | URL,
        *,
        sqlite_synchronous: str = "FULL",
        sqlite_busy_timeout_ms: int = 5_000,
        pool_size: int = 10,
    ) -> Database:
        url = make_url(url)
        if url.get_backend_name() == "sqlite":
            return cls(_sqlite_engine(url, sqlite_synchronous, sqlite_busy_timeout_ms))
        if url.get_backend_name() == "postgresql":
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            engine = sa.create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                hide_parameters=True,  # errors must not carry message bodies into logs
                connect_args={"connect_timeout": 5},
            )
            return cls(engine)
        raise ValueError(
            f"unsupported database URL {url.render_as_string(hide_password=True)!r}: "
            "use sqlite:///path.db or postgresql+psycopg://user:pass@host/db"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database the settings name, tuned as they say."""
        return cls.from_url(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            pool_size=settings.db_pool_size,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A plain connection for hot read paths that need no ORM."""
        with self.engine.connect() as conn:
            yield conn

    def _turn(self) -> AbstractContextManager[Any]:
        return self._group.lock if self._group is not None else nullcontext()

    @contextmanager
    def _begin_write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection in a write transaction, committed when the block ends without error."""
        with self._turn(), self._begin_write() as conn:
            yield conn

    def run_write(self, work: Callable[[sa.Connection], T]) -> T:
        """``work(connection)`` in a write transaction, committed before this returns."""
        if self._group is not None:
            return self._group.run(work)
        with self._begin_write() as conn:
            return work(conn)

    def delete_in_batches(
        self,
        table: sa.Table,
        condition: sa.ColumnElement[bool],
        order_by: sa.ColumnElement[Any],
        batch: int,
    ) -> int:
        """Delete ``table``'s rows matching ``condition``, ``batch`` at a time in ``order_by``
        order, each batch its own short write so other writers take turns in between; answers
        how many went."""
        chosen = sa.select(table.c.id).where(condition).order_by(order_by).limit(batch)
        statement = table.delete().where(table.c.id.in_(chosen))

        def work(conn: sa.Connection) -> int:
            return int(conn.execute(statement).rowcount)

        total = 0
        while True:
            deleted = self.run_write(work)
            total += deleted
            if deleted < batch:
                return total

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._turn(), self._sessions() as session:
            session.connection(execution_options={_WRITE: True})
            with _commit_on_exit(session):
                yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _commit_on_exit(session: Session) -> Iterator[None]:
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()


def _sqlite_engine(url: URL, synchronous: str, busy_timeout_ms: int) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    # An in-memory database lives in one connection, so every session must share it.
    pool: dict[str, Any] = (
        # A connection per thread-pool worker (40 by default): SQLite connections are cheap,
        # and one opened and closed per request under load costs its PRAGMAs every time.
        {"poolclass": sa.pool.StaticPool} if in_memory else {"pool_size": 40, "max_overflow": 8}
    )
    engine = sa.create_engine(
        url,
        **pool,
        module=_sqlite_module(),
        hide_parameters=True,
        connect_args={
            "check_same_thread": False,
            "isolation_level": None,
            "timeout": busy_timeout_ms / 1000,
        },
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")  # erased text is zeroed, not left in free pages
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()
        _load_sqlite_vec(dbapi_conn)

    dbapi = engine.dialect.loaded_dbapi

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # The driver runs in autocommit mode so that we choose how transactions begin: a
        # write takes the lock up front, so two writers queue instead of failing on upgrade.
        # Straight to the driver: this runs for every transaction.
        # Its errors (a lock wait that timed out) are raised as SQLAlchemy's, like any other.
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
        driver = conn.connection.driver_connection
        try:
            driver.execute(statement)  # type: ignore[union-attr]
        except dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                statement, None, exc, dbapi.Error, hide_parameters=True, dialect=conn.dialect
            ) from exc

    return engine


def _load_sqlite_vec(dbapi_conn: Any) -> None:
    """sqlite-vec's vector functions (semantic search), where the driver can load them."""
    try:
        import sqlite_vec
    except ImportError:  # pragma: no cover - semantic search is then unavailable on SQLite
        return
    if not hasattr(dbapi_conn, "enable_load_extension"):  # pragma: no cover - stdlib sqlite3
        return
    dbapi_conn.enable_load_extension(True)
    try:
        sqlite_vec.load(dbapi_conn)
    finally:
        dbapi_conn.enable_load_extension(False)
