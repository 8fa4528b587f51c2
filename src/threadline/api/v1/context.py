"""``GET /v1/conversations/{id}/context``: the conversation as a model should see it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from threadline.agent.context import conversation_window
from threadline.api.deps import Ctx
from threadline.api.schemas.agents import ContextQuery, ContextRead
from threadline.context.formats import render
from threadline.store import agents

router = APIRouter(prefix="/conversations", tags=["agents"])


class ContextParams(ContextQuery):
    other_channels: bool = Field(
        False,
        description="Add a short system note of the contact's other conversations "
        '("Earlier by SMS (...): ...", newest first), inside the budget.',
    )


@router.get(
    "/{conversation_id}/context", response_model=ContextRead, response_model_exclude_unset=True
)
def get_context(
    conversation_id: uuid.UUID, ctx: Ctx, query: Annotated[ContextParams, Query()]
) -> ContextRead:
    """The agent's system prompt (its template rendered for this conversation), the latest
    summary of what came before, and the newest messages that fit `max_tokens`, in the
    chosen format. Tool calls are never split from their results. 422 when `max_tokens` is
    below what the system prompt alone needs. With `other_channels=true` the system prompt
    is followed by what the contact said on their other channels (at most a quarter of the
    budget left after the prompt)."""
    caller = ctx.caller()
    setting = agents.setting(ctx.db, caller.tenant_id, conversation_id)
    agent = setting.agent or {}
    options = agent.get("settings") or {}
    max_tokens = (
        query.max_tokens or options.get("context_tokens") or ctx.settings.context_max_tokens
    )
    model = query.model or agent.get("model") or ctx.settings.llm_model
    window = conversation_window(
        ctx.db,
        caller.tenant_id,
        setting,
        max_tokens=int(max_tokens),
        model=model,
        other_channels=query.other_channels,
    )
    return ContextRead.model_validate(render(window, query.format))
