"""Settings → Agents: the system prompt template editor, with a live preview rendered for a
chosen conversation and the variables it uses that have no value there.

The preview renders exactly what the agent would be given (``agent.prompt.system_prompt``
over the conversation's ``store.agents.setting``), with the text being typed in place of
the saved template. Anyone signed in may preview; only an admin saves.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from threadline.agent.prompt import system_prompt
from threadline.context.templates import VARIABLES
from threadline.domain.errors import InvalidInput, NotFound, ThreadlineError
from threadline.store import agents, tenants
from threadline.store.database import Database
from threadline.store.models import Agent
from threadline.web import auth, queries
from threadline.web.routes.conversation import not_found
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

#: Conversations offered to preview against, newest activity first.
PREVIEW_CHOICES = 30
MAX_TEMPLATE = 32_000


@dataclasses.dataclass(frozen=True)
class Preview:
    prompt: str
    missing: list[str]
    error: str | None = None


def preview(
    db: Database,
    user: auth.WebUser,
    agent: Agent,
    template: str,
    conversation_id: uuid.UUID | None,
) -> Preview:
    """``template`` rendered as ``agent``'s system prompt for the conversation (or for no
    conversation at all), with the missing variables; a template that does not compile
    comes back as ``error`` (with its line)."""
    as_agent = agents.as_dict(agent) | {"system_prompt": template}
    try:
        if conversation_id is not None:
            setting = agents.setting(db, user.tenant_id, conversation_id)
            setting = dataclasses.replace(setting, agent=as_agent)
        else:
            tenant = tenants.get_tenant(db, user.tenant_slug)
            setting = agents.Setting({}, None, None, as_agent, tenant.name)
        rendered = system_prompt(setting)
    except InvalidInput as exc:
        return Preview("", [], exc.message)
    if rendered is None:
        return Preview("", [])
    return Preview(rendered.prompt, rendered.missing)


def _agent(request: Request, user: auth.WebUser, agent_id: str) -> Agent | None:
    try:
        return agents.get(request.app.state.db, user.tenant_id, uuid.UUID(agent_id))
    except (ValueError, NotFound):
        return None


def _conversation_id(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _page(
    request: Request,
    user: auth.WebUser,
    agent: Agent,
    *,
    template: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    db = request.app.state.db
    rows, _ = queries.inbox_rows(db, user.tenant_id, queries.InboxFilters(), limit=PREVIEW_CHOICES)
    chosen = _conversation_id(request.query_params.get("conversation"))
    if chosen is None and rows:  # one the agent answers, else the newest
        chosen = next((r.id for r in rows if r.assignee_id == agent.id), rows[0].id)
    text = (agent.system_prompt or "") if template is None else template
    context: dict[str, Any] = {
        "user": user,
        "page": "settings",
        "agent": agent,
        "template": text,
        "conversations": rows,
        "chosen": chosen,
        "preview": preview(db, user, agent, text, chosen),
        "variables": VARIABLES,
        "error": error,
        "saved": request.query_params.get("saved"),
    }
    return templates.TemplateResponse(request, "agent_edit.html", context, status_code=status_code)


@router.get("/settings/agents/{agent_id}", response_class=HTMLResponse)
def agent_page(request: Request, agent_id: str, user: auth.Reader) -> Response:
    agent = _agent(request, user, agent_id)
    if agent is None:
        return not_found(request, user, "agent")
    return _page(request, user, agent)


Template = Annotated[str, Form(max_length=MAX_TEMPLATE)]


@router.post("/settings/agents/{agent_id}/preview", response_class=HTMLResponse)
def preview_prompt(
    request: Request,
    agent_id: str,
    user: auth.Poster,
    system_prompt: Template = "",
    conversation_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The preview alone, re-rendered as the person types (htmx, debounced)."""
    agent = _agent(request, user, agent_id)
    if agent is None:
        return not_found(request, user, "agent")
    result = preview(
        request.app.state.db, user, agent, system_prompt, _conversation_id(conversation_id)
    )
    return templates.TemplateResponse(request, "_prompt_preview.html", {"preview": result})


@router.post("/settings/agents/{agent_id}")
def save_prompt(
    request: Request,
    agent_id: str,
    user: auth.Admin,
    system_prompt: Template = "",
    conversation_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    agent = _agent(request, user, agent_id)
    if agent is None:
        return not_found(request, user, "agent")
    text = system_prompt.replace("\r\n", "\n")
    try:
        agents.update(
            request.app.state.db, user.tenant_id, agent.id, {"system_prompt": text or None}
        )
    except ThreadlineError as exc:
        return _page(request, user, agent, template=text, error=exc.message, status_code=400)
    chosen = _conversation_id(conversation_id)
    suffix = f"&conversation={chosen}" if chosen else ""
    return RedirectResponse(f"/settings/agents/{agent.id}?saved=1{suffix}", 303)
