"""The tools an agent's model may call, and how Threadline runs them.

Threadline cannot run arbitrary code, so a tool is one of:

- **built-in** (always offered): ``escalate`` (status ``escalated`` and an
  ``escalation_requested`` event; the AI stops replying there until a person sets another
  status), ``set_outcome`` (the conversation's ``outcome``) and ``update_contact``
  (merges ``attributes`` into the contact's);
- **webhook**: a function in the agent's ``tools`` whose name has a URL in the agent's
  ``settings.tool_webhooks`` (``{"book_visit": "https://..."}``). Threadline POSTs
  ``{"tool", "arguments", "conversation_id", "contact_id", "call_id"}`` there and gives the
  model the JSON (or text) answer;
- anything else the model calls (not declared, or declared without a webhook) is answered
  with an error the model can read, and logged; nothing runs.

Arguments that are not a JSON object are refused the same way. Every call becomes an
``action_logs`` row (name, type, parameters, result, error, duration).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from threadline.agent import escalation
from threadline.store.database import Database
from threadline.store.models import Contact, Conversation
from threadline.store.owned import owned
from threadline.store.types import utcnow

BUILTIN: tuple[dict[str, Any], ...] = (
    {
        "type": "function",
        "function": {
            "name": "escalate",
            "description": "Hand the conversation to a person (the customer asks for one, is "
            "upset, or you cannot help). Say so in your reply.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "required": ["reason"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_outcome",
            "description": "Record how the conversation ended, e.g. booked, quoted, lost.",
            "parameters": {
                "type": "object",
                "properties": {"outcome": {"type": "string", "maxLength": 100}},
                "required": ["outcome"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "update_contact",
            "description": "Remember facts about the customer (company, budget, address ...).",
            "parameters": {
                "type": "object",
                "properties": {"attributes": {"type": "object"}},
                "required": ["attributes"],
            },
        },
    },
)
BUILTIN_NAMES = frozenset(t["function"]["name"] for t in BUILTIN)
WEBHOOK_TIMEOUT = 10.0


@dataclass(slots=True)
class ToolResult:
    call_id: str
    name: str
    kind: str  # builtin, webhook, unknown
    arguments: Any
    result: Any
    error: str | None
    duration_ms: int

    def content(self) -> str:
        """What the model reads back."""
        if self.error is not None:
            return json.dumps({"error": self.error})
        return self.result if isinstance(self.result, str) else json.dumps(self.result)


def offered(agent: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    declared = list((agent or {}).get("tools") or [])
    names = {t.get("function", {}).get("name") for t in declared}
    return [t for t in BUILTIN if t["function"]["name"] not in names] + declared


class Toolbox:
    def __init__(
        self,
        db: Database,
        tenant_id: uuid.UUID,
        conversation: Mapping[str, Any],
        agent: Mapping[str, Any] | None,
        http: httpx.Client | None = None,
    ) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.conversation = conversation
        self.agent = agent or {}
        self.declared = {t.get("function", {}).get("name") for t in (self.agent.get("tools") or [])}
        self.webhooks: Mapping[str, str] = (self.agent.get("settings") or {}).get(
            "tool_webhooks"
        ) or {}
        self.http = http
        self.escalated = False

    def run_all(self, calls: Sequence[Mapping[str, Any]]) -> list[ToolResult]:
        return [self.run(call) for call in calls]

    def run(self, call: Mapping[str, Any]) -> ToolResult:
        started = time.perf_counter()
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        raw = function.get("arguments") or "{}"
        kind = (
            "webhook"
            if name in self.webhooks and name in self.declared
            else "builtin"
            if name in BUILTIN_NAMES
            else "unknown"
        )
        result: Any = None
        error: str | None = None
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            arguments = raw
            error = "the arguments are not valid JSON"
        if error is None and not isinstance(arguments, dict):
            error = "the arguments must be a JSON object"
        if error is None:
            try:
                if kind == "builtin":
                    result = self._builtin(name, arguments)
                elif kind == "webhook":
                    result = self._webhook(name, arguments, str(call.get("id")))
                elif name in self.declared:
                    error = f"the tool {name!r} has no handler configured"
                else:
                    error = f"there is no tool named {name!r}"
            except ToolError as failed:
                error = str(failed)
        return ToolResult(
            call_id=str(call.get("id")),
            name=name,
            kind=kind,
            arguments=arguments,
            result=result,
            error=error,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )

    def _builtin(self, name: str, arguments: dict[str, Any]) -> Any:
        conversation_id = self.conversation["id"]
        if name == "escalate":
            reason = str(arguments.get("reason") or "")
            escalation.escalate(self.db, self.tenant_id, conversation_id, reason, by="agent")
            self.escalated = True
            return {"escalated": True}
        if name == "set_outcome":
            outcome = arguments.get("outcome")
            if not isinstance(outcome, str) or not outcome.strip():
                raise ToolError("outcome must be a non-empty string")
            with self.db.write() as s:
                conv = owned(
                    s, Conversation, self.tenant_id, conversation_id, name="conversation", lock=True
                )
                conv.outcome = outcome.strip()[:100]
                conv.updated_at = utcnow()
            return {"outcome": outcome.strip()[:100]}
        attributes = arguments.get("attributes")
        if not isinstance(attributes, dict):
            raise ToolError("attributes must be an object")
        contact_id = self.conversation.get("contact_id")
        if contact_id is None:
            raise ToolError("the conversation has no contact")
        with self.db.write() as s:
            contact = owned(s, Contact, self.tenant_id, contact_id, name="contact", lock=True)
            contact.attributes = {**(contact.attributes or {}), **attributes}
            contact.updated_at = utcnow()
            return {"attributes": contact.attributes}

    def _webhook(self, name: str, arguments: dict[str, Any], call_id: str) -> Any:
        body = {
            "tool": name,
            "arguments": arguments,
            "conversation_id": str(self.conversation["id"]),
            "contact_id": None
            if self.conversation.get("contact_id") is None
            else str(self.conversation["contact_id"]),
            "call_id": call_id,
        }
        client = self.http or httpx.Client(timeout=WEBHOOK_TIMEOUT)
        try:
            response = client.post(self.webhooks[name], json=body)
        except httpx.HTTPError as failed:
            raise ToolError(f"the tool's webhook failed: {type(failed).__name__}") from failed
        finally:
            if self.http is None:
                client.close()
        if response.status_code >= 400:
            raise ToolError(f"the tool's webhook answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            return response.text[:10_000]


class ToolError(Exception):
    """A tool call that could not be carried out (the model is told why)."""
