"""Agent figures for a period: one grouped query per source, each served by an index
leading with ``tenant_id`` (``model_calls (tenant_id, created_at)``, ``suggestions
(tenant_id, created_at)`` through the conversation index, ``messages (tenant_id,
created_at)``).

- replies, tokens, cost, failed calls: ``model_calls`` by ``agent_id``; a reply is a call
  that produced a message or a suggestion without tool calls, counted as calls with
  ``purpose`` reply or suggestion that made a message or a draft;
- approval, edit and rejection rates: ``suggestions`` decided in the period, by the agent
  named in their ``context_used`` (rates over decided ones; superseded drafts are not
  counted as rejections);
- first-response time: per conversation with its first message in the period, the time from
  its first inbound message to the first outbound agent message after it; median and p90
  per agent (the agent in the reply's metadata).
"""

from __future__ import annotations

import statistics
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from threadline.store.database import Database
from threadline.store.models import Agent, Message, ModelCall, Suggestion
from threadline.store.suggestions import SUPERSEDED


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(q) - 1]


def _between(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    out = []
    if since is not None:
        out.append(column >= since)
    if until is not None:
        out.append(column < until)
    return out


def agent_figures(
    db: Database, tenant_id: uuid.UUID, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    C, S, M, A = ModelCall, Suggestion, Message, Agent
    usage = C.token_usage
    calls = (
        sa.select(
            C.agent_id,
            sa.func.count(),
            sa.func.count(C.error),
            sa.func.sum(
                sa.case(
                    (sa.and_(C.message_id.is_not(None), C.purpose.in_(("reply", "suggestion"))), 1),
                    else_=0,
                )
            ),
            sa.func.sum(sa.func.coalesce(usage["prompt_tokens"].as_integer(), 0)),
            sa.func.sum(sa.func.coalesce(usage["completion_tokens"].as_integer(), 0)),
            sa.func.sum(sa.func.coalesce(usage["total_tokens"].as_integer(), 0)),
            sa.func.sum(sa.func.coalesce(C.cost_usd, 0.0)),
        )
        .where(C.tenant_id == tenant_id, *_between(C.created_at, since, until))
        .group_by(C.agent_id)
    )
    agent_of = S.context_used["agent_id"].as_string()
    decided = (
        sa.select(agent_of, S.status, sa.func.count())
        .where(
            S.tenant_id == tenant_id,
            *_between(S.created_at, since, until),
            sa.or_(S.feedback.is_(None), S.feedback != SUPERSEDED),
        )
        .group_by(agent_of, S.status)
    )
    # First inbound and first agent reply after it, per conversation active in the period.
    first_in = (
        sa.select(M.conversation_id, sa.func.min(M.occurred_at).label("at"))
        .where(
            M.tenant_id == tenant_id,
            M.direction == "inbound",
            M.role == "user",
            *_between(M.created_at, since, until),
        )
        .group_by(M.conversation_id)
        .subquery()
    )
    reply = aliased(M)
    first_out = (
        sa.select(
            first_in.c.conversation_id,
            first_in.c.at,
            sa.func.min(reply.occurred_at).label("replied_at"),
        )
        .join(
            reply,
            sa.and_(
                reply.tenant_id == tenant_id,
                reply.conversation_id == first_in.c.conversation_id,
                reply.direction == "outbound",
                reply.role == "assistant",
                reply.sender_type == "agent",
                reply.occurred_at >= first_in.c.at,
            ),
        )
        .group_by(first_in.c.conversation_id, first_in.c.at)
        .subquery()
    )
    responder = sa.select(first_out.c.at, first_out.c.replied_at, reply.metadata_).join(
        reply,
        sa.and_(
            reply.tenant_id == tenant_id,
            reply.conversation_id == first_out.c.conversation_id,
            reply.occurred_at == first_out.c.replied_at,
            reply.direction == "outbound",
            reply.sender_type == "agent",
        ),
    )
    with db.read() as s:
        names = {
            row.id: row.name
            for row in s.execute(sa.select(A.id, A.name).where(A.tenant_id == tenant_id))
        }
        figures: dict[Any, dict[str, Any]] = {}

        def entry(agent_id: Any) -> dict[str, Any]:
            key = None if agent_id is None else uuid.UUID(str(agent_id))
            if key not in figures:
                figures[key] = {
                    "agent_id": key,
                    "agent_name": names.get(key) if key else None,
                    "replies": 0,
                    "model_calls": 0,
                    "failed_calls": 0,
                    "suggestions": 0,
                    "approved": 0,
                    "edited": 0,
                    "rejected": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "total_tokens": 0,
                    "cost_usd": 0.0,
                    "_times": [],
                }
            return figures[key]

        for agent_id, count, errors, made, prompt, completion, total, cost in s.execute(calls):
            e = entry(agent_id)
            e.update(
                model_calls=count,
                failed_calls=errors,
                replies=int(made or 0),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
                total_tokens=int(total or 0),
                cost_usd=round(float(cost or 0), 8),
            )
        for agent_id, status, count in s.execute(decided):
            e = entry(agent_id)
            e["suggestions"] += count
            if status in ("approved", "edited", "rejected"):
                e[str(status)] += count
        for at, replied_at, metadata in s.execute(responder):
            agent_id = (metadata or {}).get("agent_id")
            entry(agent_id)["_times"].append((replied_at - at).total_seconds() * 1000)
    out = []
    for e in figures.values():
        times = e.pop("_times")
        decided_count = e["approved"] + e["edited"] + e["rejected"]
        e["approval_rate"] = e["approved"] / decided_count if decided_count else None
        e["edit_rate"] = e["edited"] / decided_count if decided_count else None
        e["rejection_rate"] = e["rejected"] / decided_count if decided_count else None
        e["first_response_ms_p50"] = _percentile(times, 50)
        e["first_response_ms_p90"] = _percentile(times, 90)
        out.append(e)
    out.sort(key=lambda e: (e["agent_name"] is None, e["agent_name"] or ""))
    return out
