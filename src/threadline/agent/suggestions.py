"""Deciding a suggestion: approve (as drafted or edited) sends the reply; reject keeps the
feedback. Deciding one that is no longer pending is a 409.

Approving stores the reply with ``external_message_id = "suggestion-<id>"`` before the
suggestion is marked, so two people approving at once store (and send) it once: the second
append is answered as a replay, and the second decision finds the suggestion decided.
"""

from __future__ import annotations

import uuid

from threadline.agent.loop import _store
from threadline.domain.enums import SuggestionStatus
from threadline.domain.errors import Conflict
from threadline.ingest import Ingest
from threadline.store import agent_log, agents, suggestions
from threadline.store.models import Suggestion


def approve(
    ingest: Ingest, tenant_id: uuid.UUID, suggestion_id: uuid.UUID, content: str | None = None
) -> Suggestion:
    db = ingest.db
    draft = suggestions.get(db, tenant_id, suggestion_id)
    if draft.status != SuggestionStatus.PENDING:
        raise Conflict(
            f"the suggestion is {draft.status.value}, not pending",
            suggestion_id=str(suggestion_id),
            status=draft.status.value,
        )
    edited = content is not None and content != draft.content
    context = draft.context_used or {}
    item = {
        "role": "assistant",
        "content": content if edited else draft.content,
        "sender_type": "agent",
        "direction": "outbound",
        "external_message_id": f"suggestion-{draft.id}",
        "metadata": {"suggestion_id": str(draft.id), "agent_id": context.get("agent_id")},
    }
    setting = agents.setting(db, tenant_id, draft.conversation_id)
    [stored] = _store(ingest, tenant_id, setting, [item], send=True)
    decided = suggestions.decide(
        db,
        tenant_id,
        suggestion_id,
        status=SuggestionStatus.EDITED if edited else SuggestionStatus.APPROVED,
        edited_content=content if edited else None,
        sent_message_id=stored["id"],
    )
    call_id = context.get("model_call_id")
    if call_id:
        agent_log.link_model_call(db, tenant_id, uuid.UUID(call_id), stored["id"])
    return decided


def reject(
    ingest: Ingest, tenant_id: uuid.UUID, suggestion_id: uuid.UUID, feedback: str | None
) -> Suggestion:
    return suggestions.decide(
        ingest.db, tenant_id, suggestion_id, status=SuggestionStatus.REJECTED, feedback=feedback
    )
