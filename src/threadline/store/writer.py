"""Group commit: concurrent writers share one transaction and one commit, in arrival order.

SQLite allows one writer at a time. Left to themselves, concurrent writers wait in SQLite's
busy handler, which sleeps and polls: under a burst of webhooks the slowest waits a second
or more while the file sits idle between polls. Here writers queue instead, in this process,
in arrival order:

- A write is a function of a connection. ``GroupCommit.run(work)`` queues it and waits.
- The first writer to find nobody writing becomes the *leader*: it takes every write queued
  so far (up to ``max_batch``), runs them one after the other in one ``BEGIN IMMEDIATE``
  transaction, commits once, and hands each writer its own result. If any of them fails,
  the whole transaction is rolled back and each write of the group runs again alone, so a
  failure is only ever its own write's. (Savepoints per write would do the same at a cost on
  every group; failures are rare, since input is checked before it gets here.)
- When it is done, leadership passes to the oldest write still waiting, whose thread then
  leads the next group. No extra thread, no hop: every write runs on a request's own thread.

Every guarantee of a single-writer transaction holds. Each write sees the ones before it in
the group (so seqs stay gap-free and a repeated idempotency key is a replay); a write that
fails, fails alone; nobody is answered before the commit that holds their write has
returned. A write must be a function of the database only (no side effects outside the
transaction), since a failure elsewhere in its group makes it run again.

Other processes (the CLI, a second server) still meet at SQLite's lock, through the busy
timeout; within a process, writes never wait on each other in the busy handler.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

T = TypeVar("T")

Work = Callable[[sa.Connection], T]


class _Write(Generic[T]):
    __slots__ = ("done", "error", "result", "turn", "work")

    def __init__(self, work: Work[T]) -> None:
        self.work = work
        self.turn = threading.Event()  # set when finished, or when this thread must lead
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    """Runs writes for one SQLite engine, several per transaction, in arrival order."""

    def __init__(
        self,
        engine: Engine,
        begin: Callable[[], Any],
        *,
        max_batch: int = 64,
    ) -> None:
        self._engine = engine
        self._begin = begin  # a context manager: the write transaction on a new connection
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: deque[_Write[Any]] = deque()
        self._leading = False
        # Writes outside the group (ORM sessions, migrations) take this lock too, so that in
        # this process they queue here rather than in SQLite's busy handler.
        self.lock = threading.RLock()

    def run(self, work: Work[T]) -> T:
        write = _Write(work)
        with self._mutex:
            self._queue.append(write)
            lead = not self._leading
            self._leading = True
        if not lead:
            write.turn.wait()
            if write.done:
                return write.outcome()
        self._lead()
        return write.outcome()

    def _lead(self) -> None:
        with self._mutex:
            group = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        try:
            self._commit(group)
        finally:
            with self._mutex:
                for write in group:
                    write.done = True
                    write.turn.set()
                if self._queue:
                    self._queue[0].turn.set()  # the oldest waiting write leads next
                else:
                    self._leading = False

    def _commit(self, group: list[_Write[Any]]) -> None:
        if len(group) == 1:
            self._commit_alone(group[0])
            return
        try:
            with self.lock, self._begin() as conn:
                for write in group:
                    write.result = write.work(conn)
        except Exception:
            # One write failed (or the commit did): nothing of the group is stored. Rare, as
            # input is checked before it gets here; each write now runs alone, so only the
            # failing one fails. Writes are functions of the database alone: running one
            # again after a rollback is safe.
            for write in group:
                write.result = None
                self._commit_alone(write)

    def _commit_alone(self, write: _Write[Any]) -> None:
        try:
            with self.lock, self._begin() as conn:
                write.result = write.work(conn)
        except BaseException as exc:
            write.result = None
            write.error = exc
            if not isinstance(exc, Exception):
                raise
