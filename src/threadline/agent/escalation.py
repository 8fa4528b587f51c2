"""Escalation: a conversation handed to a person. The AI stops replying there (the loop
skips ``escalated`` conversations and ``discover`` never picks them) until a person sets
another status.

A conversation is escalated by the model (the built-in ``escalate`` tool) or by one of the
agent's rules (``settings`` of the agent):

- ``escalate_keywords``: the last inbound message contains one of them (no model call);
- ``max_turns``: the agent has already written that many replies there;
- ``escalate_below_sentiment`` (-1 to 1): the customer's ``sentiment`` from the latest
  score is below it. Checked when a score is stored (so a score job escalates at once) and
  before each reply. A score escalates once: after a person hands the conversation back,
  only a newer score below the threshold escalates it again. Scores come from
  ``POST .../score``, on close, or every ``score_every_messages`` messages when set.

Each escalation moves the status (a ``status_changed`` event with reason
``agent_escalated`` or ``rule_escalated``, and the tenant's ``conversation.escalated``) and
adds an ``escalation_requested`` event ``{"reason", "by": "agent" | "rule", "rule"}``, all in
one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from threadline.domain.enums import ConversationStatus, EventType
from threadline.store import conversations as conversation_store
from threadline.store.agents import Setting
from threadline.store.database import Database
from threadline.store.models import Conversation, ConversationEvent, Message, ModelCall
from threadline.store.owned import owned
from threadline.store.types import utcnow


def escalate(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    reason: str,
    *,
    by: str,
    rule: str | None = None,
) -> bool:
    """Escalate the conversation; False when it was archived (nothing changes then)."""
    data: dict[str, Any] = {"reason": reason[:1000], "by": by}
    if rule is not None:
        data["rule"] = rule
    with db.write() as s:
        conv = owned(s, Conversation, tenant_id, conversation_id, name="conversation", lock=True)
        if conv.status == ConversationStatus.ARCHIVED:
            return False
        if conv.status != ConversationStatus.ESCALATED:
            conversation_store.record_status_change(
                s,
                tenant_id,
                conv.id,
                conv.status,
                ConversationStatus.ESCALATED,
                reason=f"{by}_escalated",
            )
            conv.status = ConversationStatus.ESCALATED
            conv.updated_at = utcnow()
        s.add(
            ConversationEvent(
                tenant_id=tenant_id,
                conversation_id=conv.id,
                type=EventType.ESCALATION_REQUESTED,
                data=data,
            )
        )
    return True


def _options(agent: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (agent or {}).get("settings") or {}


def threshold(agent: Mapping[str, Any] | None) -> float | None:
    """The agent's ``escalate_below_sentiment``, or None when it has none."""
    value = _options(agent).get("escalate_below_sentiment")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def keyword_rule(
    agent: Mapping[str, Any] | None, last_user: Mapping[str, Any] | None
) -> str | None:
    keywords = [str(k).lower() for k in _options(agent).get("escalate_keywords") or [] if k]
    text = str((last_user or {}).get("content") or "").lower()
    for keyword in keywords:
        if keyword in text:
            return f"keyword {keyword!r}"
    return None


def turns_rule(db: Database, tenant_id: uuid.UUID, setting: Setting) -> str | None:
    limit = _options(setting.agent).get("max_turns")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return None
    M = Message
    q = sa.select(sa.func.count()).where(
        M.tenant_id == tenant_id,
        M.conversation_id == setting.conversation["id"],
        M.role == "assistant",
        M.sender_type == "agent",
        M.tool_calls.is_(None),
    )
    with db.read() as s:
        replies = int(s.scalar(q) or 0)
    return f"{replies} agent replies (max_turns {limit})" if replies >= limit else None


def sentiment_rule(
    db: Database, tenant_id: uuid.UUID, conversation_id: uuid.UUID, below: float | None
) -> str | None:
    """Why the latest score escalates the conversation, or None: its sentiment is below
    ``below`` and no escalation came after it."""
    if below is None:
        return None
    C, MC, E = Conversation, ModelCall, ConversationEvent
    sentiment_q = sa.select(C.sentiment).where(C.tenant_id == tenant_id, C.id == conversation_id)
    scored_q = sa.select(sa.func.max(MC.created_at)).where(
        MC.tenant_id == tenant_id,
        MC.conversation_id == conversation_id,
        MC.purpose == "score",
        MC.error.is_(None),
    )
    escalated_q = sa.select(sa.func.max(E.created_at)).where(
        E.tenant_id == tenant_id,
        E.conversation_id == conversation_id,
        E.type == EventType.ESCALATION_REQUESTED,
    )
    with db.read() as s:
        sentiment = s.scalar(sentiment_q)
        if sentiment is None or sentiment >= below:
            return None
        scored_at = s.scalar(scored_q)
        escalated_at = s.scalar(escalated_q)
    if escalated_at is not None and (scored_at is None or scored_at <= escalated_at):
        return None
    return f"sentiment {sentiment:.2f} below {below:g}"
