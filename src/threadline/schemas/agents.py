"""Agents, context windows, suggestions and the other agent routes' bodies and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from threadline.context.formats import Format
from threadline.domain.enums import AgentKind, SuggestionStatus
from threadline.schemas.common import Input, IsoTimestamp, JSONObject, Output, QueryParams

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Template = Annotated[str, StringConstraints(max_length=32_000)]


class ContextQuery(QueryParams):
    """``GET /v1/conversations/{id}/context``."""

    format: Format = Field(Format.OPENAI, description="openai, anthropic or langchain.")
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=2_000_000,
        description="Token budget; default the agent's `context_tokens` setting, else "
        "THREADLINE_CONTEXT_MAX_TOKENS.",
    )
    model: ModelName | None = Field(
        None, description="Counts tokens with this model's encoding; default the agent's model."
    )


class ContextRead(Output):
    format: Format
    messages: list[Any]
    token_count: int
    summary: str | None
    truncated: bool
    system: str | None = Field(None, description="anthropic only: the system text.")


class AgentCreate(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Front desk",
                    "model": "gpt-4o-mini",
                    "system_prompt": "You answer for {{ business_name }}. Greet "
                    "{{ contact_first_name | default('there') }}.",
                    "tools": [],
                    "settings": {"time_zone": "America/New_York"},
                }
            ]
        }
    )

    name: Name
    kind: AgentKind = AgentKind.AI
    model: ModelName | None = Field(None, description="Default: THREADLINE_LLM_MODEL.")
    system_prompt: Template | None = Field(None, description="A prompt template.")
    tools: list[JSONObject] = Field(
        default_factory=list, max_length=64, description="OpenAI function specs."
    )
    settings: JSONObject = Field(default_factory=dict)


class AgentUpdate(Input):
    name: Name | None = None
    kind: AgentKind | None = None
    model: ModelName | None = None
    system_prompt: Template | None = None
    tools: list[JSONObject] | None = Field(None, max_length=64)
    settings: JSONObject | None = None


class AgentRead(Output):
    id: uuid.UUID
    name: str
    kind: AgentKind
    model: str | None
    system_prompt: str | None
    tools: list[Any]
    settings: JSONObject
    created_at: datetime
    updated_at: datetime


class AgentList(Output):
    data: list[AgentRead]


class PreviewRequest(Input):
    conversation_id: uuid.UUID


class PreviewRead(Output):
    prompt: str
    missing: list[str]


class SuggestionListQuery(QueryParams):
    status: SuggestionStatus | None = None
    conversation_id: uuid.UUID | None = None
    limit: int = Field(100, ge=1, le=500)


class SuggestionRead(Output):
    id: uuid.UUID
    conversation_id: uuid.UUID
    in_reply_to_message_id: uuid.UUID | None
    content: str
    edited_content: str | None
    confidence: float | None
    model: str | None
    token_usage: Any
    cost_usd: float | None
    status: SuggestionStatus
    feedback: str | None
    decided_at: datetime | None
    sent_message_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class SuggestionList(Output):
    data: list[SuggestionRead]


class ApproveRequest(Input):
    content: Annotated[str, StringConstraints(min_length=1, max_length=32_000)] | None = Field(
        None, description="The edited text; the suggestion becomes `edited`."
    )


class RejectRequest(Input):
    feedback: Annotated[str, StringConstraints(max_length=4_000)] | None = None


class Accepted(Output):
    job_id: uuid.UUID
    status: Literal["queued"] = "queued"


class ActionRead(Output):
    id: uuid.UUID
    message_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    action_name: str
    action_type: str
    parameters: Any
    result: Any
    error: str | None
    duration_ms: int | None
    created_at: datetime


class ActionList(Output):
    data: list[ActionRead]


class SessionRead(Output):
    index: int
    first_seq: int
    last_seq: int
    started_at: datetime
    last_message_at: datetime
    message_count: int
    status: Literal["active", "ended", "escalated"]
    summary: str | None


class SessionList(Output):
    data: list[SessionRead]


class AnalyticsQuery(QueryParams):
    since: IsoTimestamp | None = None
    until: IsoTimestamp | None = None


class AgentFigures(Output):
    agent_id: uuid.UUID | None
    agent_name: str | None
    replies: int
    model_calls: int
    failed_calls: int
    suggestions: int
    approved: int
    edited: int
    rejected: int
    approval_rate: float | None
    edit_rate: float | None
    rejection_rate: float | None
    first_response_ms_p50: float | None
    first_response_ms_p90: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float


class AnalyticsRead(Output):
    since: datetime | None
    until: datetime | None
    data: list[AgentFigures]
