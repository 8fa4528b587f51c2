"""Stored messages as OpenAI chat messages, and their tool-call units.

A stored message is a mapping as the store returns it (``id``, ``seq``, ``role``,
``content``, ``tool_calls``, ``tool_call_id``, ``name`` ...). The OpenAI chat form is the
canonical one: windows are measured in it, and the other formats are derived from it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "SUMMARY_PREFIX",
    "Unit",
    "openai_message",
    "summary_message",
    "system_message",
    "tool_call_ids",
    "units",
]

SUMMARY_PREFIX: Final = "Summary of the conversation before the messages that follow:\n"
"""Put before a summary's text wherever a summary is shown to a model."""

StoredMessage = Mapping[str, Any]


def system_message(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def summary_message(summary: str) -> dict[str, Any]:
    """The system message that carries a summary: ``SUMMARY_PREFIX`` + the summary."""
    return system_message(SUMMARY_PREFIX + summary)


def tool_call_ids(message: StoredMessage) -> tuple[str, ...]:
    """The ids of an assistant message's tool calls (empty for any other message)."""
    if message.get("role") != "assistant":
        return ()
    calls = message.get("tool_calls") or ()
    return tuple(
        call["id"]
        for call in calls
        if isinstance(call, Mapping) and isinstance(call.get("id"), str)
    )


def _has_tool_calls(message: StoredMessage) -> bool:
    return message.get("role") == "assistant" and bool(message.get("tool_calls"))


def openai_message(message: StoredMessage) -> dict[str, Any]:
    """One stored message as an OpenAI chat message.

    - ``tool_calls`` (non-empty, on an assistant message) are copied unchanged, so they
      serialise to the same JSON they were stored as; an empty list is left out (the API
      refuses ``"tool_calls": []``);
    - ``content`` is kept as stored; None becomes ``""`` except on an assistant message
      with tool calls, where None is what the API expects;
    - ``name`` is kept on user, assistant and system messages; a tool message carries
      ``tool_call_id`` instead;
    - every other stored field (ids, timestamps, attachments, metadata) is left out.
    """
    role = message.get("role")
    out: dict[str, Any] = {"role": role}
    content = message.get("content")
    with_calls = _has_tool_calls(message)
    out["content"] = content if content is not None or with_calls else ""
    name = message.get("name")
    if name and role != "tool":
        out["name"] = name
    if with_calls:
        out["tool_calls"] = copy.deepcopy(list(message["tool_calls"]))
    if role == "tool":
        out["tool_call_id"] = message.get("tool_call_id")
    return out


@dataclass(slots=True)
class Unit:
    """Messages that go into a window together: one message, or an assistant message with
    tool calls followed by the tool results answering every one of its calls."""

    messages: list[StoredMessage] = field(default_factory=list)


def units(messages: Sequence[StoredMessage]) -> tuple[list[Unit], list[StoredMessage]]:
    """Split a history (oldest first) into units; return ``(units, malformed)``.

    An assistant message with tool calls forms a unit with the tool messages right after it
    that answer its calls (each call id once). It is malformed, and left out with those
    results, when a call has no id or is not answered there: a model API refuses a call
    without its results. A tool message that answers no such call (an orphan) is malformed
    too. Every other message is a unit of its own.
    """
    out: list[Unit] = []
    malformed: list[StoredMessage] = []
    i, n = 0, len(messages)
    while i < n:
        message = messages[i]
        i += 1
        if message.get("role") == "tool":
            malformed.append(message)
            continue
        if not _has_tool_calls(message):
            out.append(Unit([message]))
            continue
        calls = message["tool_calls"]
        wanted = set(tool_call_ids(message))
        complete = len(wanted) == len(calls)
        group: list[StoredMessage] = [message]
        while i < n and messages[i].get("role") == "tool":
            answer = messages[i].get("tool_call_id")
            if answer not in wanted:
                break
            wanted.discard(answer)
            group.append(messages[i])
            i += 1
        if complete and not wanted:
            out.append(Unit(group))
        else:
            malformed.extend(group)
    return out, malformed
