"""Scores and summaries, each one model call asking for JSON.

``score`` asks for the conversation's ``sentiment`` (-1 to 1), ``satisfaction_score`` (1 to
10), ``outcome`` and a short ``summary`` (with a JSON schema as ``response_format``) and
stores them on the conversation; its ``model_calls`` row (purpose ``score``) keeps the model,
tokens, cost and time. The model sees the contact's whole thread across channels: the
conversation's window plus a note of their other conversations (``other_channels_note``,
up to ``OTHER_SHARE`` of the budget). A score below the agent's
``escalate_below_sentiment`` escalates an open conversation at once (``agent.escalation``).
It runs on demand (``POST .../score``), when a conversation is archived
(``agent_jobs.discover_closed``) and, with the agent's ``score_every_messages``, as the
conversation grows. ``summarise`` writes a rolling summary: the previous
summary plus the messages after it (at most ``SUMMARY_CHUNK`` at a time, leaving the newest
``KEEP_RECENT`` out, which the window shows anyway) become one new summary covering seq 1
to its end. An answer that is not the JSON asked for is retried once, then the call fails
cleanly (``ModelFailed``): nothing is half-stored. Each call is a ``model_calls`` row.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from threadline.agent import escalation, llm
from threadline.agent.context import conversation_window, other_channels_note
from threadline.domain.enums import ConversationStatus
from threadline.domain.errors import ModelFailed
from threadline.settings import Settings
from threadline.store import agent_log, agents, messages, summaries
from threadline.store.database import Database
from threadline.store.models import Conversation
from threadline.store.owned import owned
from threadline.store.types import utcnow

SUMMARY_CHUNK = 500
#: The share of the scoring budget the contact's other conversations may take.
OTHER_SHARE = 0.25
KEEP_RECENT = 20

SCORE_SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "conversation_score",
        "strict": True,
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
                "satisfaction_score": {"type": "integer", "minimum": 1, "maximum": 10},
                "outcome": {"type": "string"},
                "summary": {"type": "string"},
            },
            "required": ["sentiment", "satisfaction_score", "outcome", "summary"],
        },
    },
}

SCORE_PROMPT = (
    "Rate the conversation that follows between a customer (user) and a business "
    "(assistant). Answer only JSON: sentiment of the customer from -1 (negative) to 1 "
    "(positive), satisfaction_score from 1 to 10, outcome in a few words (e.g. booked, "
    "quoted, resolved, lost, open) and a summary of at most three sentences."
)
OTHER_CHANNELS_PROMPT = (
    "The same customer's earlier conversations on other channels, for the whole picture "
    "(rate the customer's experience across all of them):\n\n"
)
SUMMARY_PROMPT = (
    "Summarise the conversation so far for the agent who continues it: who the customer "
    "is, what they want, what was agreed or promised, and what is still open. Plain text, "
    "at most 200 words."
)


def _ask_json(
    client: llm.LLM,
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    agent_id: Any,
    messages_: list[dict[str, Any]],
    purpose: str,
    check: Any,
) -> tuple[dict[str, Any], llm.Completion]:
    """Ask twice at most for a JSON object ``check`` accepts; each call on record."""
    last_error = "the model's answer was not the JSON asked for"
    for _ in range(2):
        record: dict[str, Any] = {
            "purpose": purpose,
            "conversation_id": conversation_id,
            "agent_id": agent_id,
        }
        try:
            done = client.complete(messages_, response_format=SCORE_SCHEMA)
        except ModelFailed as failed:
            agent_log.record_model_call(
                db,
                agent_log.model_call_row(
                    tenant_id, model=client.config.model, error=failed.message, **record
                ),
            )
            raise
        value = llm.parse_json_object(done.content)
        problem = "not a JSON object" if value is None else check(value)
        agent_log.record_model_call(
            db,
            agent_log.model_call_row(
                tenant_id,
                model=done.model,
                token_usage=done.usage,
                cost_usd=done.cost_usd,
                response_time_ms=done.response_time_ms,
                error=None if problem is None else f"unusable answer: {problem}",
                **record,
            ),
        )
        if problem is None and value is not None:
            return value, done
        last_error = f"the model's answer was unusable: {problem}"
    raise ModelFailed(last_error, model=client.config.model)


def _check_score(value: dict[str, Any]) -> str | None:
    sentiment = value.get("sentiment")
    score = value.get("satisfaction_score")
    if not isinstance(sentiment, (int, float)) or not -1 <= sentiment <= 1:
        return "sentiment must be a number from -1 to 1"
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 10:
        return "satisfaction_score must be an integer from 1 to 10"
    if not isinstance(value.get("outcome"), str) or not isinstance(value.get("summary"), str):
        return "outcome and summary must be text"
    return None


def score(
    db: Database, settings: Settings, tenant_id: uuid.UUID, conversation_id: uuid.UUID
) -> dict[str, Any]:
    """Score the conversation and store the figures on it."""
    setting = agents.setting(db, tenant_id, conversation_id)
    config = llm.resolve(settings, setting.agent)
    window = conversation_window(
        db, tenant_id, setting, max_tokens=settings.context_max_tokens, model=config.model
    )
    history = window.openai_messages()[1 if window.system_prompt is not None else 0 :]
    ask = [{"role": "system", "content": SCORE_PROMPT}]
    note = other_channels_note(
        db,
        tenant_id,
        setting,
        max_tokens=int(settings.context_max_tokens * OTHER_SHARE),
        model=config.model,
    )
    if note is not None:
        ask.append({"role": "system", "content": OTHER_CHANNELS_PROMPT + note})
    ask.extend(history)
    agent_id = (setting.agent or {}).get("id")
    value, _ = _ask_json(
        llm.LLM(config), db, tenant_id, conversation_id, agent_id, ask, "score", _check_score
    )
    figures = {
        "sentiment": float(value["sentiment"]),
        "satisfaction_score": int(value["satisfaction_score"]),
        "outcome": str(value["outcome"]).strip()[:100] or None,
        "summary": str(value["summary"]).strip()[:4000] or None,
    }
    with db.write() as s:
        conv = owned(s, Conversation, tenant_id, conversation_id, name="conversation", lock=True)
        for name, item in figures.items():
            setattr(conv, name, item)
        conv.updated_at = utcnow()
        status = conv.status
    if status not in (ConversationStatus.ARCHIVED, ConversationStatus.ESCALATED):
        below = escalation.threshold(setting.agent)
        reason = escalation.sentiment_rule(db, tenant_id, conversation_id, below)
        if reason is not None:
            escalation.escalate(
                db,
                tenant_id,
                conversation_id,
                reason,
                by="rule",
                rule="escalate_below_sentiment",
            )
    return figures


def summarise(
    db: Database, settings: Settings, tenant_id: uuid.UUID, conversation_id: uuid.UUID
) -> dict[str, Any] | None:
    """Write the next rolling summary; None when there is too little new to summarise."""
    setting = agents.setting(db, tenant_id, conversation_id)
    config = llm.resolve(settings, setting.agent)
    previous = summaries.latest(db, tenant_id, conversation_id)
    after = 0 if previous is None else int(previous["to_seq"])
    end = int(setting.conversation["last_seq"]) - KEEP_RECENT
    if end <= after:
        return None
    rows, _ = messages.list_range(
        db, tenant_id, conversation_id, after_seq=after, before_seq=end + 1, limit=SUMMARY_CHUNK
    )
    rows = [r for r in rows if r.get("message_type") != "event"]
    if not rows:
        return None
    lines = []
    for row in rows:
        text = row.get("content") or ""
        if row.get("tool_calls"):
            text = (text + " " + json.dumps(row["tool_calls"])).strip()
        lines.append(f"{row['role']}: {text}")
    body = "\n".join(lines)
    if previous is not None:
        body = f"Summary so far:\n{previous['content']}\n\nWhat followed:\n{body}"
    client = llm.LLM(config)
    agent_id = (setting.agent or {}).get("id")
    ask = [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": body}]
    record: dict[str, Any] = {
        "purpose": "summary",
        "conversation_id": conversation_id,
        "agent_id": agent_id,
    }
    try:
        done = client.complete(ask)
    except ModelFailed as failed:
        agent_log.record_model_call(
            db,
            agent_log.model_call_row(tenant_id, model=config.model, error=failed.message, **record),
        )
        raise
    text = (done.content or "").strip()
    agent_log.record_model_call(
        db,
        agent_log.model_call_row(
            tenant_id,
            model=done.model,
            token_usage=done.usage,
            cost_usd=done.cost_usd,
            response_time_ms=done.response_time_ms,
            error=None if text else "empty summary",
            **record,
        ),
    )
    if not text:
        raise ModelFailed("the model wrote an empty summary", model=config.model)
    return summaries.add(
        db,
        tenant_id,
        conversation_id,
        from_seq=1 if previous is None else int(previous["from_seq"]),
        to_seq=int(rows[-1]["seq"]),
        content=text,
        model=done.model,
        token_count=(done.usage or {}).get("completion_tokens"),
    )
