"""What a person does to a conversation from the dashboard: reply, decide a draft, change its
status or assignee, escalate and hand back. Each is one call into the store or the agent."""

from __future__ import annotations

import uuid
from typing import Any

from threadline.domain.enums import ConversationStatus, SuggestionStatus
from threadline.domain.errors import Conflict
from threadline.ingest import Ingest
from threadline.store import conversations, suggestions


def reply(
    ingest: Ingest, tenant_id: uuid.UUID, conversation_id: uuid.UUID, text: str, author: str
) -> dict[str, Any]:
    """Store a person's reply; through the channel when the conversation has an inbox."""
    conv = conversations.get(ingest.db, tenant_id, conversation_id)
    item = {
        "role": "assistant",
        "content": text,
        "sender_type": "human",
        "direction": "outbound",
        "metadata": {"author": author, "source": "dashboard"},
    }
    result = ingest.append(tenant_id, conversation_id, [item], send=conv.inbox_id is not None)
    return result.messages[0]


def approve(
    ingest: Ingest, tenant_id: uuid.UUID, suggestion_id: uuid.UUID, content: str | None
) -> Any:
    """Send the draft (or its edited text) through the channel and mark it decided.

    The reply is stored with ``external_message_id = "suggestion-<id>"`` before the draft is
    marked, so two people approving at once send it once.
    """
    db = ingest.db
    draft = suggestions.get(db, tenant_id, suggestion_id)
    if draft.status != SuggestionStatus.PENDING:
        raise Conflict(f"the draft is already {draft.status.value}", status=draft.status.value)
    edited = content is not None and content.strip() != draft.content.strip()
    conv = conversations.get(db, tenant_id, draft.conversation_id)
    item = {
        "role": "assistant",
        "content": content if edited else draft.content,
        "sender_type": "agent",
        "direction": "outbound",
        "external_message_id": f"suggestion-{draft.id}",
        "metadata": {"suggestion_id": str(draft.id)},
    }
    result = ingest.append(tenant_id, draft.conversation_id, [item], send=conv.inbox_id is not None)
    return suggestions.decide(
        db,
        tenant_id,
        suggestion_id,
        status=SuggestionStatus.EDITED if edited else SuggestionStatus.APPROVED,
        edited_content=content if edited else None,
        sent_message_id=result.messages[0]["id"],
    )


def reject(
    ingest: Ingest, tenant_id: uuid.UUID, suggestion_id: uuid.UUID, feedback: str | None
) -> Any:
    return suggestions.decide(
        ingest.db, tenant_id, suggestion_id, status=SuggestionStatus.REJECTED, feedback=feedback
    )


def set_status(
    ingest: Ingest, tenant_id: uuid.UUID, conversation_id: uuid.UUID, status: ConversationStatus
) -> None:
    conversations.update(ingest.db, tenant_id, conversation_id, {"status": status})


def assign(
    ingest: Ingest, tenant_id: uuid.UUID, conversation_id: uuid.UUID, assignee_id: uuid.UUID | None
) -> None:
    conversations.update(ingest.db, tenant_id, conversation_id, {"assignee_id": assignee_id})


def hand_back(
    ingest: Ingest, tenant_id: uuid.UUID, conversation_id: uuid.UUID, agent_id: uuid.UUID | None
) -> None:
    """Give the conversation back to the AI agent: out of escalation, assigned to the inbox's
    agent (when it has one)."""
    conv = conversations.get(ingest.db, tenant_id, conversation_id)
    fields: dict[str, Any] = {}
    if conv.status == ConversationStatus.ESCALATED:
        fields["status"] = ConversationStatus.ACTIVE
    if agent_id is not None:
        fields["assignee_id"] = agent_id
    if fields:
        conversations.update(ingest.db, tenant_id, conversation_id, fields)
