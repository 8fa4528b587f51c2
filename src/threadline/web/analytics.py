"""The figures of the analytics page, over the last ``days`` days: message volume by channel
and day, first-response time percentiles, satisfaction, draft decisions, and model tokens and
cost by agent. Each is one grouped query (or one narrow scan) per figure."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from threadline.store.database import Database
from threadline.store.models import Agent, Conversation, Message, ModelCall, Suggestion
from threadline.store.types import utcnow

C, M = Conversation, Message


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def figures(db: Database, tenant_id: uuid.UUID, days: int = 30) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    day = sa.func.date(M.occurred_at)
    volume_q = (
        sa.select(day, C.channel, sa.func.count())
        .join(C, sa.and_(C.tenant_id == M.tenant_id, C.id == M.conversation_id))
        .where(M.tenant_id == tenant_id, M.occurred_at >= since, M.role.in_(("user", "assistant")))
        .group_by(day, C.channel)
    )
    first_in = (
        sa.select(M.conversation_id, sa.func.min(M.occurred_at).label("at"))
        .where(M.tenant_id == tenant_id, M.occurred_at >= since, M.role == "user")
        .group_by(M.conversation_id)
        .subquery()
    )
    first_out = (
        sa.select(first_in.c.at, sa.func.min(M.occurred_at))
        .join(first_in, first_in.c.conversation_id == M.conversation_id)
        .where(M.tenant_id == tenant_id, M.role == "assistant", M.occurred_at >= first_in.c.at)
        .group_by(M.conversation_id, first_in.c.at)
    )
    satisfaction_q = (
        sa.select(C.satisfaction_score, sa.func.count())
        .where(C.tenant_id == tenant_id, C.satisfaction_score.is_not(None))
        .group_by(C.satisfaction_score)
    )
    decisions_q = (
        sa.select(Suggestion.status, sa.func.count())
        .where(Suggestion.tenant_id == tenant_id, Suggestion.created_at >= since)
        .group_by(Suggestion.status)
    )
    calls_q = (
        sa.select(Agent.name, ModelCall.token_usage, ModelCall.cost_usd)
        .outerjoin(
            Agent, sa.and_(Agent.tenant_id == ModelCall.tenant_id, Agent.id == ModelCall.agent_id)
        )
        .where(ModelCall.tenant_id == tenant_id, ModelCall.created_at >= since)
        .limit(100_000)
    )
    with db.connect() as conn:
        volume = [(str(d), str(ch), n) for d, ch, n in conn.execute(volume_q)]
        waits = [(out - at).total_seconds() for at, out in conn.execute(first_out)]
        satisfaction = {int(s or 0): n for s, n in conn.execute(satisfaction_q)}
        decisions = {str(s): n for s, n in conn.execute(decisions_q)}
        calls = list(conn.execute(calls_q))
    days_seen = sorted({d for d, _, _ in volume})
    by_channel: dict[str, dict[str, int]] = defaultdict(dict)
    for d, ch, n in volume:
        by_channel[ch][d] = n
    agents: dict[str, dict[str, float]] = defaultdict(
        lambda: {"tokens": 0, "cost": 0.0, "calls": 0}
    )
    for name, usage, cost in calls:
        row = agents[name or "(no agent)"]
        usage = usage or {}
        row["tokens"] += int(usage.get("prompt_tokens") or 0) + int(
            usage.get("completion_tokens") or 0
        )
        row["cost"] += float(cost or 0)
        row["calls"] += 1
    decided = sum(n for s, n in decisions.items() if s != "pending")
    return {
        "days": days,
        "labels": days_seen,
        "volume": {ch: [counts.get(d, 0) for d in days_seen] for ch, counts in by_channel.items()},
        "messages": sum(n for _, _, n in volume),
        "first_response": {
            "count": len(waits),
            "p50": _percentile(sorted(waits), 50),
            "p90": _percentile(sorted(waits), 90),
            "p99": _percentile(sorted(waits), 99),
        },
        "satisfaction": [satisfaction.get(score, 0) for score in range(1, 11)],
        "decisions": decisions,
        "decided": decided,
        "agents": dict(sorted(agents.items())),
    }
