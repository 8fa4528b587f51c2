"""Agents: create, list, read, change, and preview the system prompt for a conversation."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from threadline.agent.prompt import system_prompt
from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.context.templates import render_prompt
from threadline.schemas.agents import (
    AgentCreate,
    AgentList,
    AgentRead,
    AgentUpdate,
    PreviewRead,
    PreviewRequest,
)
from threadline.store import agents

router = APIRouter(prefix="/agents", tags=["agents"])


def _read(agent: object) -> AgentRead:
    return AgentRead.model_validate(agents.as_dict(agent))  # type: ignore[arg-type]


@router.post("", status_code=201, response_model=AgentRead, responses={409: {}})
def create_agent(body: AgentCreate, ctx: Ctx, _: NoQueryParams) -> AgentRead:
    """An agent. Its `system_prompt` template is checked now (422 with the line when it is
    not valid); `tools` are OpenAI function specs."""
    caller = ctx.caller()
    return _read(agents.create(ctx.db, caller.tenant_id, body.model_dump()))


@router.get("", response_model=AgentList)
def list_agents(ctx: Ctx, _: NoQueryParams) -> AgentList:
    caller = ctx.caller()
    return AgentList(data=[_read(a) for a in agents.list_all(ctx.db, caller.tenant_id)])


@router.get("/{agent_id}", response_model=AgentRead)
def get_agent(agent_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> AgentRead:
    caller = ctx.caller()
    return _read(agents.get(ctx.db, caller.tenant_id, agent_id))


@router.patch("/{agent_id}", response_model=AgentRead, responses={409: {}})
def update_agent(agent_id: uuid.UUID, body: AgentUpdate, ctx: Ctx, _: NoQueryParams) -> AgentRead:
    caller = ctx.caller()
    fields = body.model_dump(exclude_unset=True)
    return _read(agents.update(ctx.db, caller.tenant_id, agent_id, fields))


@router.post("/{agent_id}/preview", response_model=PreviewRead)
def preview_prompt(
    agent_id: uuid.UUID, body: PreviewRequest, ctx: Ctx, _: NoQueryParams
) -> PreviewRead:
    """The agent's system prompt as it would be rendered for `conversation_id`, and the
    variables it uses that have no value there."""
    caller = ctx.caller()
    agent = agents.get(ctx.db, caller.tenant_id, agent_id)
    setting = agents.setting(ctx.db, caller.tenant_id, body.conversation_id)
    setting = agents.Setting(
        conversation=setting.conversation,
        contact=setting.contact,
        inbox=setting.inbox,
        agent=agents.as_dict(agent),
        tenant_name=setting.tenant_name,
    )
    rendered = system_prompt(setting) or render_prompt("", {})
    return PreviewRead(prompt=rendered.prompt, missing=rendered.missing)
