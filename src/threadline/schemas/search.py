"""``GET /v1/search``: its query and its answer."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, model_validator

from threadline.domain.enums import Channel, Role
from threadline.schemas.common import IsoTimestamp, Output, QueryParams
from threadline.schemas.messages import MessageRead


class SearchQuery(QueryParams):
    q: str = Field(
        min_length=1,
        max_length=1000,
        description='What to look for: words (all must match), "a phrase", `OR`, `-word`.',
    )
    mode: Literal["keyword", "semantic", "hybrid"] = Field(
        "hybrid",
        description="keyword: full-text match; semantic: by meaning (409 without embeddings); "
        "hybrid: both, fused by reciprocal rank (keyword alone without embeddings).",
    )
    contact_id: uuid.UUID | None = None
    channel: Channel | None = None
    inbox_id: uuid.UUID | None = None
    role: Role | None = None
    since: IsoTimestamp | None = Field(None, description="Messages that occurred at or after.")
    until: IsoTimestamp | None = Field(None, description="Messages that occurred before.")
    limit: int = Field(20, ge=1, le=100, description="Most results, 1 to 100.")

    @model_validator(mode="after")
    def _check(self) -> SearchQuery:
        if "\x00" in self.q:
            raise ValueError("q contains a NUL character")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class SearchHit(Output):
    message: MessageRead
    conversation_id: uuid.UUID
    score: float = Field(description="Higher is better; comparable within one answer only.")
    highlight: str = Field(
        description="A snippet of the content, HTML-escaped, the matched terms in <mark>."
    )


class SearchResults(Output):
    data: list[SearchHit]
    mode: Literal["keyword", "semantic", "hybrid"] = Field(
        description="The mode that ran (keyword when hybrid had no embeddings)."
    )
