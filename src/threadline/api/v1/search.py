from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from threadline.api.deps import Ctx
from threadline.schemas.messages import MessageRead
from threadline.schemas.search import SearchHit, SearchQuery, SearchResults
from threadline.search import Filters, search
from threadline.search.embedders import Embedder, EmbedderError, from_settings

router = APIRouter(prefix="/search", tags=["search"])


@router.get("", response_model=SearchResults, responses={409: {}})
def search_messages(ctx: Ctx, query: Annotated[SearchQuery, Query()]) -> SearchResults:
    """The tenant's messages that best match `q`, best first.

    `semantic` finds messages by meaning, once the embed job has reached them (seconds after
    they are stored); it answers 409 `semantic_search_unavailable` where embeddings are off
    (`THREADLINE_EMBEDDINGS=none`, or PostgreSQL without pgvector). `hybrid` (the default)
    then runs as `keyword`, and `mode` in the answer says which ran."""
    caller = ctx.caller()
    embedder: Embedder | None
    try:
        embedder = from_settings(ctx.settings)
    except EmbedderError:
        embedder = None
    filters = Filters(
        contact_id=query.contact_id,
        channel=query.channel,
        inbox_id=query.inbox_id,
        role=query.role,
        since=query.since,
        until=query.until,
    )
    result = search(
        ctx.db,
        caller.tenant_id,
        query.q,
        mode=query.mode,
        filters=filters,
        limit=query.limit,
        embedder=embedder,
    )
    return SearchResults(
        data=[
            SearchHit(
                message=MessageRead.model_validate(hit.message),
                conversation_id=hit.conversation_id,
                score=hit.score,
                highlight=hit.highlight,
            )
            for hit in result.hits
        ],
        mode=result.mode,
    )
