"""``GET /v1/conversations/{id}/context``: the conversation as a model should see it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from threadline.agent.context import (
    RECALL_MAX,
    RecallMode,
    conversation_window,
    window_with_recall,
)
from threadline.api.deps import Ctx
from threadline.context.formats import render
from threadline.schemas.agents import ContextQuery, ContextRead
from threadline.schemas.common import Output
from threadline.search.embedders import Embedder, EmbedderError, from_settings
from threadline.store import agents

router = APIRouter(prefix="/conversations", tags=["agents"])


class ContextParams(ContextQuery):
    other_channels: bool = Field(
        False,
        description="Add a short system note of the contact's other conversations "
        '("Earlier by SMS (...): ...", newest first), inside the budget.',
    )
    recall: int = Field(
        0,
        ge=0,
        le=RECALL_MAX,
        description="Add a system note of up to this many older messages of the conversation "
        "(older than the window) related to the newest customer message, found by meaning "
        "(by words without embeddings), inside the budget.",
    )


class RecallRead(Output):
    mode: RecallMode = Field(
        description="semantic (by meaning) or keyword (embeddings off, or no vectors)."
    )
    count: int = Field(description="How many older messages the note quotes.")
    message_ids: list[uuid.UUID] = Field(description="Their ids, in conversation order.")


class ContextWithRecall(ContextRead):
    recall: RecallRead | None = Field(None, description="Only when `recall` was asked for.")


@router.get(
    "/{conversation_id}/context",
    response_model=ContextWithRecall,
    response_model_exclude_unset=True,
)
def get_context(
    conversation_id: uuid.UUID, ctx: Ctx, query: Annotated[ContextParams, Query()]
) -> ContextWithRecall:
    """The agent's system prompt (its template rendered for this conversation), the latest
    summary of what came before, and the newest messages that fit `max_tokens`, in the
    chosen format. Tool calls are never split from their results. 422 when `max_tokens` is
    below what the system prompt alone needs. With `other_channels=true` the system prompt
    is followed by what the contact said on their other channels (at most a quarter of the
    budget left after the prompt). With `recall=N` (0-50) it is followed by a note headed
    "Relevant earlier messages (found by meaning; ...)" quoting up to N older messages
    related to the newest customer message, one line each (`- #seq, time UTC, customer:
    ...`), in at most a quarter of the budget left; the window shrinks to make room and
    never repeats a recalled message. `recall` in the answer says how they were found
    (`semantic`, or `keyword` when embeddings are off) and which were quoted."""
    caller = ctx.caller()
    setting = agents.setting(ctx.db, caller.tenant_id, conversation_id)
    agent = setting.agent or {}
    options = agent.get("settings") or {}
    max_tokens = int(
        query.max_tokens or options.get("context_tokens") or ctx.settings.context_max_tokens
    )
    model = query.model or agent.get("model") or ctx.settings.llm_model
    if query.recall == 0:
        window = conversation_window(
            ctx.db,
            caller.tenant_id,
            setting,
            max_tokens=max_tokens,
            model=model,
            other_channels=query.other_channels,
        )
        return ContextWithRecall.model_validate(render(window, query.format))
    embedder: Embedder | None
    try:
        embedder = from_settings(ctx.settings)
    except EmbedderError:
        embedder = None
    window, recalled = window_with_recall(
        ctx.db,
        caller.tenant_id,
        setting,
        max_tokens=max_tokens,
        model=model,
        recall=query.recall,
        embedder=embedder,
        other_channels=query.other_channels,
    )
    recall = RecallRead(
        mode=recalled.mode,
        count=len(recalled.messages),
        message_ids=[m["id"] for m in recalled.messages],
    )
    return ContextWithRecall.model_validate(render(window, query.format) | {"recall": recall})
