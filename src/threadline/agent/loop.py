"""The reply loop: one reply to one conversation.

``reply`` builds the context (``agent.context``), calls the model with the agent's tools,
runs the tools the model calls (``agent.tools``) and stores each round as an assistant
message with ``tool_calls`` followed by its tool results (one append, so a window never
holds a call without its results), logging every call in ``action_logs``. When the model
answers in text, the inbox's mode decides what happens:

- ``auto`` (or no inbox): the reply is stored, and sent through the channel when the
  conversation has an inbox (``SEND_THROUGH_CHANNEL``);
- ``approval``: it becomes a pending suggestion for the last inbound message (older pending
  drafts of the conversation are superseded);
- ``off``: inbound messages start nothing; a reply asked for explicitly is a suggestion.

Every model call is a ``model_calls`` row (tokens, cost, response time, error) whether or
not it produced a message; the reply message points at its call. A conversation that is
``escalated`` or ``archived`` gets no AI reply. Escalation also happens by the agent's rules
(keywords, too many turns, a score's sentiment below a threshold; ``agent.escalation``),
checked before the model is called: a rule that holds escalates without a model call.

Idempotent per job: the reply and each tool round carry an ``external_message_id`` made from
the job id, so a job that runs again after a crash or a timeout answers what it stored
before instead of storing (and sending) it twice.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from threadline.agent import escalation, llm
from threadline.agent.context import conversation_window
from threadline.agent.prompt import system_prompt
from threadline.agent.tools import Toolbox, offered
from threadline.domain.enums import ConversationStatus
from threadline.domain.errors import ModelFailed
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import agent_log, agents, suggestions
from threadline.store.agents import Setting
from threadline.store.database import Database

#: Whether ``Ingest.append`` can queue a message's delivery (``send=True``) in the append's
#: transaction. The one place that decides whether replies go out through the channel.
SEND_THROUGH_CHANNEL = "send" in inspect.signature(Ingest.append).parameters

Emit = Callable[[str, dict[str, Any]], None]


def _ignore(_kind: str, _data: dict[str, Any]) -> None:
    return None


@dataclass(slots=True)
class ReplyResult:
    """How a reply ended: ``sent`` or ``stored`` (a message), ``suggested`` (a pending
    suggestion), ``escalated`` (by rule, no model call) or ``skipped`` (with ``reason``)."""

    status: str
    message: dict[str, Any] | None = None
    suggestion_id: uuid.UUID | None = None
    reason: str | None = None
    tool_results: list[dict[str, Any]] = field(default_factory=list)


def _final_action(setting: Setting, explicit: bool) -> str | None:
    """``send``, ``suggest`` or None (do nothing)."""
    mode = setting.mode
    if mode is None or mode in ("auto", "auto_send"):
        return "send"
    if mode == "approval":
        return "suggest"
    return "suggest" if explicit else None


def _last_inbound(window_messages: Any) -> Mapping[str, Any] | None:
    for message in reversed(window_messages):
        if message.get("role") == "user":
            return message  # type: ignore[no-any-return]
    return None


def _store(
    ingest: Ingest,
    tenant_id: uuid.UUID,
    setting: Setting,
    items: list[dict[str, Any]],
    send: bool,
) -> list[dict[str, Any]]:
    conversation_id = setting.conversation["id"]
    if send and SEND_THROUGH_CHANNEL and setting.inbox is not None:
        flags = [item.get("role") == "assistant" and not item.get("tool_calls") for item in items]
        appended = ingest.append(tenant_id, conversation_id, items, send=flags)  # type: ignore[call-arg]
    else:
        appended = ingest.append(tenant_id, conversation_id, items)
    return list(appended.messages)


class Reply:
    """One run of the loop for one conversation (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        ingest: Ingest,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        *,
        job_id: uuid.UUID,
        explicit: bool = False,
        stream: bool = False,
        emit: Emit = _ignore,
    ) -> None:
        self.db = db
        self.settings = settings
        self.ingest = ingest
        self.tenant_id = tenant_id
        self.conversation_id = conversation_id
        self.job_id = job_id
        self.explicit = explicit
        self.stream = stream
        self.emit = emit

    def run(self) -> ReplyResult:
        setting = agents.setting(self.db, self.tenant_id, self.conversation_id)
        status = setting.conversation["status"]
        if status in (ConversationStatus.ESCALATED, ConversationStatus.ARCHIVED):
            return ReplyResult("skipped", reason=f"the conversation is {status}")
        agent = setting.agent if (setting.agent or {}).get("kind") == "ai" else None
        if agent is None and setting.agent is not None and not self.explicit:
            return ReplyResult("skipped", reason="the conversation's agent is a person")
        action = _final_action(setting, self.explicit)
        if action is None:
            return ReplyResult("skipped", reason="the inbox's mode is off")
        config = llm.resolve(self.settings, agent)
        options = (agent or {}).get("settings") or {}
        budget = int(options.get("context_tokens") or self.settings.context_max_tokens)
        window = conversation_window(
            self.db,
            self.tenant_id,
            setting,
            max_tokens=budget,
            model=config.model,
            other_channels=options.get("other_channels") is True,
        )
        last_user = _last_inbound(window.messages)
        rules = (
            ("escalate_keywords", lambda: escalation.keyword_rule(agent, last_user)),
            ("max_turns", lambda: escalation.turns_rule(self.db, self.tenant_id, setting)),
            (
                "escalate_below_sentiment",
                lambda: escalation.sentiment_rule(
                    self.db, self.tenant_id, self.conversation_id, escalation.threshold(agent)
                ),
            ),
        )
        for rule, check in rules:
            reason = check()
            if reason is not None:
                escalation.escalate(
                    self.db, self.tenant_id, self.conversation_id, reason, by="rule", rule=rule
                )
                return ReplyResult("escalated", reason=reason)
        toolbox = Toolbox(self.db, self.tenant_id, setting.conversation, agent)

        client = llm.LLM(config)
        purpose = "reply" if action == "send" else "suggestion"
        rendered = system_prompt(setting)
        prompt = None if rendered is None else rendered.prompt
        messages: list[dict[str, Any]] = window.openai_messages()
        tools = offered(agent)
        agent_id = None if agent is None else agent["id"]
        results: list[dict[str, Any]] = []
        rounds = self.settings.agent_max_tool_rounds
        for round_no in range(rounds + 1):
            last_round = round_no == rounds
            completion, call_id = self._call(
                client, messages, None if last_round else tools, purpose, agent_id, prompt
            )
            if completion.tool_calls and not last_round:
                results += self._tool_round(
                    toolbox, completion, call_id, round_no, agent_id, setting, messages
                )
                continue
            text = (completion.content or "").strip()
            if not text:
                raise ModelFailed("the model answered with no text", model=config.model)
            break
        if action == "send":
            item = {
                "role": "assistant",
                "content": text,
                "sender_type": "agent",
                "direction": "outbound",
                "external_message_id": f"agent-reply-{self.job_id}",
                "metadata": {"agent_id": None if agent_id is None else str(agent_id)},
            }
            [stored] = _store(self.ingest, self.tenant_id, setting, [item], send=True)
            agent_log.link_model_call(self.db, self.tenant_id, call_id, stored["id"])
            sent = SEND_THROUGH_CHANNEL and setting.inbox is not None
            self.emit("message", stored)
            return ReplyResult("sent" if sent else "stored", message=stored, tool_results=results)
        draft = suggestions.create_pending(
            self.db,
            self.tenant_id,
            {
                "conversation_id": self.conversation_id,
                "in_reply_to_message_id": None if last_user is None else last_user["id"],
                "content": text,
                "model": completion.model,
                "token_usage": completion.usage,
                "cost_usd": completion.cost_usd,
                "context_used": {
                    "model_call_id": str(call_id),
                    "agent_id": None if agent_id is None else str(agent_id),
                    "first_seq": window.first_seq,
                    "token_count": window.token_count,
                    "summary": window.summary is not None,
                },
            },
        )
        self.emit("suggestion", {"id": str(draft.id), "content": text, "status": "pending"})
        return ReplyResult("suggested", suggestion_id=draft.id, tool_results=results)

    def _call(
        self,
        client: llm.LLM,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        purpose: str,
        agent_id: uuid.UUID | None,
        prompt: str | None,
    ) -> tuple[llm.Completion, uuid.UUID]:
        """One model call, on record whatever happens."""
        record: dict[str, Any] = {
            "purpose": purpose,
            "model": client.config.model,
            "conversation_id": self.conversation_id,
            "agent_id": agent_id,
            "prompt": prompt,
        }
        try:
            if self.stream:
                completion = None
                for part in client.stream(messages, tools=tools):
                    if isinstance(part, llm.Completion):
                        completion = part
                    elif part.text is not None:
                        self.emit("delta", {"text": part.text})
                    elif part.tool_call is not None:
                        self.emit("tool_call", part.tool_call)
                assert completion is not None
            else:
                completion = client.complete(messages, tools=tools)
        except ModelFailed as failed:
            row = agent_log.model_call_row(
                self.tenant_id,
                **record,
                error=failed.message,
                response_time_ms=failed.details.get("response_time_ms"),
            )
            agent_log.record_model_call(self.db, row)
            raise
        row = agent_log.model_call_row(
            self.tenant_id,
            **record | {"model": completion.model},
            token_usage=completion.usage,
            cost_usd=completion.cost_usd,
            response_time_ms=completion.response_time_ms,
        )
        return completion, agent_log.record_model_call(self.db, row)

    def _tool_round(
        self,
        toolbox: Toolbox,
        completion: llm.Completion,
        call_id: uuid.UUID,
        round_no: int,
        agent_id: uuid.UUID | None,
        setting: Setting,
        messages: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        ran = toolbox.run_all(completion.tool_calls)
        for result in ran:
            self.emit(
                "tool_result",
                {
                    "call_id": result.call_id,
                    "name": result.name,
                    "result": result.result,
                    "error": result.error,
                },
            )
        assistant = {
            "role": "assistant",
            "content": completion.content,
            "tool_calls": completion.tool_calls,
            "sender_type": "agent",
            "direction": "outbound",
            "external_message_id": f"agent-tools-{self.job_id}-{round_no}",
        }
        answers = [
            {
                "role": "tool",
                "tool_call_id": r.call_id,
                "name": r.name or None,
                "content": r.content(),
                "external_message_id": f"agent-tool-{self.job_id}-{round_no}-{i}",
            }
            for i, r in enumerate(ran)
        ]
        stored = _store(self.ingest, self.tenant_id, setting, [assistant, *answers], send=False)
        agent_log.link_model_call(self.db, self.tenant_id, call_id, stored[0]["id"])
        agent_log.record_actions(
            self.db,
            [
                agent_log.action_row(
                    self.tenant_id,
                    self.conversation_id,
                    agent_id,
                    stored[0]["id"],
                    action_name=r.name or "(unnamed)",
                    action_type=r.kind,
                    parameters=r.arguments
                    if isinstance(r.arguments, dict)
                    else {"raw": str(r.arguments)},
                    result=r.result,
                    error=r.error,
                    duration_ms=r.duration_ms,
                )
                for r in ran
            ],
        )
        messages.append(completion.message())
        messages.extend(
            {"role": "tool", "tool_call_id": r.call_id, "content": r.content()} for r in ran
        )
        return [
            {"call_id": r.call_id, "name": r.name, "result": r.result, "error": r.error}
            for r in ran
        ]
