"""Agents (the AI or person that answers a conversation) and what a prompt is made from.

An AI agent's ``system_prompt`` is a template (``context.templates``), checked when it is
written; ``tools`` are OpenAI function specs; ``settings`` hold the rest (``time_zone``,
``business_name``, ``temperature``, ``max_tokens``, ``context_tokens``, webhook tools ...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa

from threadline.context.templates import validate_template
from threadline.domain.enums import AgentKind
from threadline.domain.errors import AlreadyExists, InvalidInput, NotFound
from threadline.store.database import Database
from threadline.store.models import Agent, Contact, Conversation, Inbox, Tenant
from threadline.store.owned import owned
from threadline.store.types import utcnow

FIELDS = ("name", "kind", "model", "system_prompt", "tools", "settings")


def _check(fields: dict[str, Any]) -> None:
    if fields.get("system_prompt") is not None:
        validate_template(fields["system_prompt"])
    for i, tool in enumerate(fields.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise InvalidInput(
                "a tool is an OpenAI function spec: "
                '{"type": "function", "function": {"name", "description", "parameters"}}',
                index=i,
            )


def _name_taken(s: Any, tenant_id: uuid.UUID, name: str, but: uuid.UUID | None) -> None:
    q = sa.select(Agent.id).where(Agent.tenant_id == tenant_id, Agent.name == name)
    found = s.scalar(q)
    if found is not None and found != but:
        raise AlreadyExists("an agent with this name exists", name=name)


def create(db: Database, tenant_id: uuid.UUID, fields: dict[str, Any]) -> Agent:
    _check(fields)
    with db.write() as s:
        _name_taken(s, tenant_id, fields["name"], None)
        now = utcnow()
        agent = Agent(
            tenant_id=tenant_id,
            name=fields["name"],
            kind=AgentKind(fields.get("kind") or AgentKind.AI),
            model=fields.get("model"),
            system_prompt=fields.get("system_prompt"),
            tools=fields.get("tools") or [],
            settings=fields.get("settings") or {},
            created_at=now,
            updated_at=now,
        )
        s.add(agent)
        s.flush()
        return agent


def get(db: Database, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    with db.read() as s:
        return owned(s, Agent, tenant_id, agent_id, name="agent")


def list_all(db: Database, tenant_id: uuid.UUID) -> list[Agent]:
    with db.read() as s:
        q = sa.select(Agent).where(Agent.tenant_id == tenant_id).order_by(Agent.name)
        return list(s.scalars(q))


def update(
    db: Database, tenant_id: uuid.UUID, agent_id: uuid.UUID, fields: dict[str, Any]
) -> Agent:
    _check(fields)
    with db.write() as s:
        agent = owned(s, Agent, tenant_id, agent_id, name="agent", lock=True)
        if fields.get("name") is not None and fields["name"] != agent.name:
            _name_taken(s, tenant_id, fields["name"], agent.id)
        for name in FIELDS:
            if name not in fields:
                continue
            value = fields[name]
            if name in ("name", "kind") and value is None:
                continue
            if name == "tools":
                value = value or []
            if name == "settings":
                value = value or {}
            setattr(agent, name, value)
        agent.updated_at = utcnow()
        return agent


def as_dict(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "kind": agent.kind,
        "model": agent.model,
        "system_prompt": agent.system_prompt,
        "tools": agent.tools or [],
        "settings": agent.settings or {},
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


@dataclass(frozen=True, slots=True)
class Setting:
    """A conversation and what surrounds it: its contact, inbox, agent and tenant.

    ``agent`` is the inbox's agent, else the conversation's assignee (None when neither
    is set). ``mode`` is the inbox's mode (None without an inbox).
    """

    conversation: dict[str, Any]
    contact: dict[str, Any] | None
    inbox: dict[str, Any] | None
    agent: dict[str, Any] | None
    tenant_name: str

    @property
    def mode(self) -> str | None:
        return None if self.inbox is None else str(self.inbox["mode"])


def _row(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in names}


_CONTACT = ("id", "name", "phone", "email", "attributes")
_INBOX = ("id", "name", "channel", "address", "mode", "agent_id", "settings")
_CONVERSATION = (
    "id",
    "channel",
    "title",
    "status",
    "contact_id",
    "inbox_id",
    "assignee_id",
    "last_seq",
    "message_count",
    "created_at",
    "last_message_at",
)


def setting(db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> Setting:
    """The conversation's setting in one query (``NotFound`` for another tenant's id)."""
    agent_id = sa.func.coalesce(Inbox.agent_id, Conversation.assignee_id)
    q = (
        sa.select(Conversation, Contact, Inbox, Agent, Tenant.name)
        .join(Tenant, Tenant.id == Conversation.tenant_id)
        .outerjoin(
            Contact,
            sa.and_(Contact.tenant_id == tenant_id, Contact.id == Conversation.contact_id),
        )
        .outerjoin(Inbox, sa.and_(Inbox.tenant_id == tenant_id, Inbox.id == Conversation.inbox_id))
        .outerjoin(Agent, sa.and_(Agent.tenant_id == tenant_id, Agent.id == agent_id))
        .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
    )
    with db.read() as s:
        row = s.execute(q).first()
    if row is None:
        raise NotFound("conversation not found", conversation_id=str(conversation_id))
    conv, contact, inbox, agent, tenant_name = row
    return Setting(
        conversation=_row(conv, _CONVERSATION),
        contact=None if contact is None else _row(contact, _CONTACT),
        inbox=None if inbox is None else _row(inbox, _INBOX),
        agent=None if agent is None else as_dict(cast(Agent, agent)),
        tenant_name=tenant_name,
    )
