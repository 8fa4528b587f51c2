"""Suggestions: drafts to approve (as written or edited, then sent) or reject."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from threadline.agent import suggestions as deciding
from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.agents import (
    ApproveRequest,
    RejectRequest,
    SuggestionList,
    SuggestionListQuery,
    SuggestionRead,
)
from threadline.store import suggestions

router = APIRouter(prefix="/suggestions", tags=["agents"])


@router.get("", response_model=SuggestionList)
def list_suggestions(ctx: Ctx, query: Annotated[SuggestionListQuery, Query()]) -> SuggestionList:
    """Newest first."""
    caller = ctx.caller()
    rows = suggestions.list_for(ctx.db, caller.tenant_id, **query.model_dump())
    return SuggestionList(data=[SuggestionRead.model_validate(r) for r in rows])


@router.get("/{suggestion_id}", response_model=SuggestionRead)
def get_suggestion(suggestion_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> SuggestionRead:
    caller = ctx.caller()
    return SuggestionRead.model_validate(suggestions.get(ctx.db, caller.tenant_id, suggestion_id))


@router.post(
    "/{suggestion_id}/approve",
    response_model=SuggestionRead,
    responses={409: {"description": "Not pending"}},
)
def approve(
    suggestion_id: uuid.UUID, ctx: Ctx, _: NoQueryParams, body: ApproveRequest | None = None
) -> SuggestionRead:
    """Send the draft (or, with `content`, the edited text: status `edited`, both kept)."""
    caller = ctx.caller()
    content = None if body is None else body.content
    decided = deciding.approve(ctx.ingest, caller.tenant_id, suggestion_id, content)
    return SuggestionRead.model_validate(decided)


@router.post(
    "/{suggestion_id}/reject",
    response_model=SuggestionRead,
    responses={409: {"description": "Not pending"}},
)
def reject(
    suggestion_id: uuid.UUID, ctx: Ctx, _: NoQueryParams, body: RejectRequest | None = None
) -> SuggestionRead:
    caller = ctx.caller()
    feedback = None if body is None else body.feedback
    return SuggestionRead.model_validate(
        deciding.reject(ctx.ingest, caller.tenant_id, suggestion_id, feedback)
    )
