"""The agent loop's queue: one ``agent_jobs`` row per reply, score or summary to make.

- ``discover`` queues a reply for every conversation that waits for one on an inbox whose
  AI agent answers by itself (mode ``auto`` or ``approval``): status ``needs_reply``, active
  within ``DISCOVER_WITHIN``. A job is unique per (conversation, kind, ``trigger_seq``), so a
  message is queued once however often it is found, by however many workers.
- ``discover_closed`` queues a score for every conversation archived lately (a
  ``conversation.status_changed`` entry to ``archived`` in the tenant's event log) whose
  agent (the inbox's, else the assignee) is an AI with a model, unless the agent's
  ``settings.score_on_close`` is false. Unique per ``trigger_seq`` like the rest: a
  conversation already scored as it stands is not scored again.
- ``request`` queues a job on demand (``POST .../reply``, ``POST .../score``): an existing
  job for the same last message is answered as it is while queued, running or done, and
  queued again when it failed or was skipped.
- ``claim`` takes due jobs (``queued``, ``run_after`` passed) one by one with a conditional
  update, so two workers never run the same job; ``finish`` records how it ended, and
  ``retry`` puts it back with a delay.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from threadline.domain.enums import AgentKind, ConversationStatus
from threadline.domain.ids import new_id
from threadline.store.database import Database
from threadline.store.models import Agent, AgentJob, Conversation, Event, Inbox
from threadline.store.types import utcnow

jobs = cast(sa.Table, AgentJob.__table__)

#: Conversations quiet for longer than this are not picked up by ``discover`` (a server
#: that was down for a day does not answer day-old messages by itself).
DISCOVER_WITHIN = timedelta(hours=1)
#: Inbox modes in which an AI agent answers inbound messages by itself.
ANSWERING_MODES = ("auto", "auto_send", "approval")
#: How far back each ``discover_closed`` scan reaches past the previous one, for status
#: changes written by transactions that committed after that scan.
CLOSED_OVERLAP = timedelta(seconds=60)
#: A job still running after this long is taken to have lost its worker and runs again.
STALE_AFTER = timedelta(minutes=10)


def _insert_ignoring_duplicates(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(jobs).on_conflict_do_nothing()
    return conn.execute(statement, rows).rowcount or 0


def _row(
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    kind: str,
    trigger_seq: int,
    now: datetime,
    status: str = "queued",
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "conversation_id": conversation_id,
        "agent_id": agent_id,
        "kind": kind,
        "status": status,
        "trigger_seq": trigger_seq,
        "attempts": 0,
        "run_after": now,
        "created_at": now,
        "updated_at": now,
    }


def discover(db: Database, now: datetime | None = None) -> int:
    """Queue replies for the conversations that wait for their inbox's AI agent."""
    now = now or utcnow()
    C, B, A = Conversation, Inbox, Agent
    inboxes = (
        sa.select(B.tenant_id, B.id, B.agent_id)
        .join(A, sa.and_(A.tenant_id == B.tenant_id, A.id == B.agent_id))
        .where(
            B.agent_id.is_not(None),
            B.is_active.is_(True),
            sa.type_coerce(B.mode, sa.String()).in_(ANSWERING_MODES),
            A.kind == AgentKind.AI,
        )
    )
    with db.connect() as conn:
        found = conn.execute(inboxes).all()
        rows: list[dict[str, Any]] = []
        for tenant_id, inbox_id, agent_id in found:
            waiting = sa.select(C.id, C.last_seq).where(
                C.tenant_id == tenant_id,
                C.inbox_id == inbox_id,
                C.last_activity_at >= now - DISCOVER_WITHIN,
                C.status == ConversationStatus.NEEDS_REPLY,
            )
            for conversation_id, last_seq in conn.execute(waiting):
                rows.append(_row(tenant_id, conversation_id, agent_id, "reply", last_seq, now))
    if not rows:
        return 0
    return db.run_write(lambda conn: _insert_ignoring_duplicates(conn, rows))


class ClosedWatch:
    """Where a worker's ``discover_closed`` scans start: ``DISCOVER_WITHIN`` back the first
    time, then ``CLOSED_OVERLAP`` before the previous scan."""

    def __init__(self) -> None:
        self.last_scan: datetime | None = None

    def since(self, now: datetime) -> datetime:
        earliest = now - DISCOVER_WITHIN
        if self.last_scan is None:
            return earliest
        return max(earliest, self.last_scan - CLOSED_OVERLAP)


def discover_closed(
    db: Database,
    *,
    default_model: bool,
    watch: ClosedWatch | None = None,
    now: datetime | None = None,
) -> int:
    """Queue scores for conversations archived lately (see the module docstring);
    ``default_model`` tells whether agents without a model of their own have one."""
    now = now or utcnow()
    watch = watch or ClosedWatch()
    since = watch.since(now)
    E, C, B, A = Event, Conversation, Inbox, Agent
    changes = sa.select(E.tenant_id, E.conversation_id, E.data).where(
        E.created_at >= since, E.type == "conversation.status_changed"
    )
    with db.connect() as conn:
        wanted = {
            (tenant_id, conversation_id)
            for tenant_id, conversation_id, data in conn.execute(changes)
            if conversation_id is not None
            and isinstance(data, dict)
            and data.get("to") == ConversationStatus.ARCHIVED.value
        }
        found: list[Any] = []
        if wanted:
            agent_id = sa.func.coalesce(B.agent_id, C.assignee_id)
            q = (
                sa.select(C.tenant_id, C.id, C.last_seq, A.id, A.model, A.settings)
                .select_from(C)
                .outerjoin(B, sa.and_(B.tenant_id == C.tenant_id, B.id == C.inbox_id))
                .join(A, sa.and_(A.tenant_id == C.tenant_id, A.id == agent_id))
                .where(
                    C.id.in_(sorted({c for _, c in wanted})),
                    C.status == ConversationStatus.ARCHIVED,
                    C.last_seq > 0,
                    A.kind == AgentKind.AI,
                )
            )
            found = list(conn.execute(q).all())
    watch.last_scan = now
    rows = [
        _row(tenant_id, conversation_id, agent, "score", last_seq, now)
        for tenant_id, conversation_id, last_seq, agent, model, options in found
        if (tenant_id, conversation_id) in wanted
        and (options or {}).get("score_on_close", True) is not False
        and (model or default_model)
    ]
    if not rows:
        return 0
    return db.run_write(lambda conn: _insert_ignoring_duplicates(conn, rows))


def latest_trigger(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, kind: str
) -> int | None:
    """The highest ``trigger_seq`` of the conversation's jobs of ``kind`` (None: none yet)."""
    q = sa.select(sa.func.max(jobs.c.trigger_seq)).where(
        jobs.c.tenant_id == tenant_id,
        jobs.c.conversation_id == conversation_id,
        jobs.c.kind == kind,
    )
    with db.connect() as conn:
        value = conn.execute(q).scalar()
    return None if value is None else int(value)


def request(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    kind: str,
    trigger_seq: int,
    *,
    running: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Queue (or, with ``running``, claim at once) a job; answers it and whether it is ours
    to run now (False when an equal job is already queued, running or done)."""
    now = utcnow()
    row = _row(
        tenant_id,
        conversation_id,
        agent_id,
        kind,
        trigger_seq,
        now,
        "running" if running else "queued",
    )
    if running:
        row["attempts"] = 1

    def work(conn: sa.Connection) -> tuple[dict[str, Any], bool]:
        if _insert_ignoring_duplicates(conn, [row]):
            return row, True
        q = sa.select(jobs).where(
            jobs.c.tenant_id == tenant_id,
            jobs.c.conversation_id == conversation_id,
            jobs.c.kind == kind,
            jobs.c.trigger_seq == trigger_seq,
        )
        existing = dict(conn.execute(q).mappings().one())
        if existing["status"] in ("failed", "skipped"):
            again = {"status": row["status"], "run_after": now, "updated_at": now, "error": None}
            if running:
                again["attempts"] = existing["attempts"] + 1
            conn.execute(jobs.update().where(jobs.c.id == existing["id"]).values(**again))
            return existing | again, True
        return existing, False

    return db.run_write(work)


def claim(db: Database, limit: int = 8, now: datetime | None = None) -> list[dict[str, Any]]:
    """Take up to ``limit`` due jobs for this worker (oldest first)."""
    now = now or utcnow()
    due = (
        sa.select(jobs)
        .where(jobs.c.status == "queued", jobs.c.run_after <= now)
        .order_by(jobs.c.run_after)
        .limit(limit)
    )
    stale = (
        jobs.update()
        .where(jobs.c.status == "running", jobs.c.updated_at < now - STALE_AFTER)
        .values(status="queued", updated_at=now)
    )
    with db.connect() as conn:
        candidates = [dict(r) for r in conn.execute(due).mappings()]
        has_stale = conn.execute(
            sa.select(jobs.c.id).where(jobs.c.status == "running").limit(1)
        ).first()
    if has_stale is not None:
        db.run_write(lambda conn: conn.execute(stale))
    claimed: list[dict[str, Any]] = []
    for job in candidates:

        def take(conn: sa.Connection, job: dict[str, Any] = job) -> int:
            update = (
                jobs.update()
                .where(jobs.c.id == job["id"], jobs.c.status == "queued")
                .values(status="running", attempts=job["attempts"] + 1, updated_at=utcnow())
            )
            return conn.execute(update).rowcount or 0

        if db.run_write(take):
            claimed.append(job | {"status": "running", "attempts": job["attempts"] + 1})
    return claimed


def finish(db: Database, job_id: uuid.UUID, status: str, error: str | None = None) -> None:
    update = (
        jobs.update()
        .where(jobs.c.id == job_id)
        .values(status=status, error=error, updated_at=utcnow())
    )
    db.run_write(lambda conn: conn.execute(update))


def retry(db: Database, job_id: uuid.UUID, delay: timedelta, error: str) -> None:
    now = utcnow()
    update = (
        jobs.update()
        .where(jobs.c.id == job_id)
        .values(status="queued", run_after=now + delay, error=error, updated_at=now)
    )
    db.run_write(lambda conn: conn.execute(update))


def get(db: Database, job_id: uuid.UUID) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return None if row is None else dict(row)
