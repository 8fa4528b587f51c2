"""Figures: per agent, for a period."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from threadline.agent.analytics import agent_figures
from threadline.api.deps import Ctx
from threadline.domain.errors import InvalidInput
from threadline.schemas.agents import AgentFigures, AnalyticsQuery, AnalyticsRead

router = APIRouter(prefix="/analytics", tags=["agents"])


@router.get("/agents", response_model=AnalyticsRead)
def agents_analytics(ctx: Ctx, query: Annotated[AnalyticsQuery, Query()]) -> AnalyticsRead:
    """Per agent, from `since` (inclusive) to `until` (exclusive): replies, model calls,
    approval / edit / rejection rates, first-response time (median and p90, ms), tokens and
    cost."""
    caller = ctx.caller()
    if query.since and query.until and query.since >= query.until:
        raise InvalidInput("since must be before until")
    rows = agent_figures(ctx.db, caller.tenant_id, query.since, query.until)
    return AnalyticsRead(
        since=query.since,
        until=query.until,
        data=[AgentFigures.model_validate(r) for r in rows],
    )
