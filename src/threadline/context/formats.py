"""A context window in the shapes model APIs and frameworks take.

``render(window, format)`` answers ``GET /v1/conversations/{id}/context``::

    {"format", "messages", "token_count", "summary", "truncated"}   (+ "system" for anthropic)

``token_count`` is the window's OpenAI count (exact for OpenAI models; for the other
formats it is the same number, a close estimate of what another provider bills).

OpenAI (``openai_messages``)
    System prompt and summary as system messages, then the history as OpenAI chat
    messages (``messages.openai_message``): tool calls are passed through unchanged, tool
    results carry ``tool_call_id``.

Anthropic Messages API (``anthropic_payload``) -> ``{"system": str | None, "messages"}``
    - ``system`` joins, with blank lines, the system prompt, the summary, and the text of
      any system message of the history (the API has no system turns), in that order;
      None when there is nothing;
    - every turn's ``content`` is a list of blocks; empty text is left out (the API refuses
      empty text blocks) and a turn left with no block is dropped;
    - an assistant's tool calls become ``tool_use`` blocks whose ``input`` is the parsed
      ``arguments`` JSON object (``""`` counts as ``{}``); arguments that are not a JSON
      object (invalid JSON, a list ...) are kept as text in ``{"raw_arguments": "<text>"}``,
      since ``input`` must be an object;
    - tool results become ``tool_result`` blocks (``tool_use_id``, ``content``) in a
      ``user`` turn;
    - consecutive turns of the same role are merged into one, so turns alternate;
    - the first turn is ``user``, as the API requires: leading assistant turns are not sent
      as turns (nothing is invented to precede them); their text is kept at the end of
      ``system`` after ``LEADING_ASSISTANT_PREFIX``, and their tool calls are dropped with
      the results that answer them.

LangChain (``langchain_messages``)
    Exactly the dicts ``langchain_core.messages.messages_to_dict`` makes (``messages_from_dict``
    reads them back): ``system`` / ``human`` / ``ai`` / ``tool``; an AI message's tool calls
    as ``{"name", "args", "id", "type": "tool_call"}``, and calls whose arguments are not a
    JSON object as ``invalid_tool_calls`` (LangChain's own place for them, raw text kept).
    Each message's ``id`` is the stored message's id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from threadline.context.messages import SUMMARY_PREFIX
from threadline.context.window import Window
from threadline.domain.errors import InvalidInput

__all__ = [
    "LEADING_ASSISTANT_PREFIX",
    "Format",
    "anthropic_payload",
    "langchain_messages",
    "openai_messages",
    "render",
]

LEADING_ASSISTANT_PREFIX: Final = "The conversation shown begins after this message of yours:\n"


class Format(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    LANGCHAIN = "langchain"


def openai_messages(window: Window) -> list[dict[str, Any]]:
    """The window as OpenAI chat messages (the messages ``token_count`` counts)."""
    return window.openai_messages()


def _parse_arguments(arguments: Any) -> tuple[dict[str, Any] | None, str]:
    """``(object, raw text)``; the object is None when the text is not a JSON object."""
    if isinstance(arguments, Mapping):
        return dict(arguments), json.dumps(arguments)
    raw = arguments if isinstance(arguments, str) else ""
    if raw.strip() == "":
        return {}, raw
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None, raw
    return (parsed, raw) if isinstance(parsed, dict) else (None, raw)


def _function(call: Any) -> Mapping[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    return function if isinstance(function, Mapping) else {}


def _anthropic_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role = message.get("role")
    content = message.get("content")
    if role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": content or "",
            }
        ]
    blocks: list[dict[str, Any]] = []
    if content:
        blocks.append({"type": "text", "text": content})
    if role == "assistant":
        for call in message.get("tool_calls") or ():
            function = _function(call)
            parsed, raw = _parse_arguments(function.get("arguments"))
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": parsed if parsed is not None else {"raw_arguments": raw},
                }
            )
    return blocks


def anthropic_payload(window: Window) -> dict[str, Any]:
    """``{"system": str | None, "messages": [...]}`` for Anthropic's Messages API."""
    system_parts: list[str] = []
    if window.system_prompt:
        system_parts.append(window.system_prompt)
    if window.summary is not None:
        system_parts.append(SUMMARY_PREFIX + window.summary)

    turns: list[dict[str, Any]] = []
    for message in window.messages:
        if message.get("role") == "system":
            if message.get("content"):
                system_parts.append(message["content"])
            continue
        role = "assistant" if message.get("role") == "assistant" else "user"
        blocks = _anthropic_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    leading: list[str] = []
    dropped_calls: set[Any] = set()
    while turns and turns[0]["role"] == "assistant":
        for block in turns.pop(0)["content"]:
            if block["type"] == "text":
                leading.append(block["text"])
            else:
                dropped_calls.add(block["id"])
        if turns and dropped_calls:
            kept = [
                b
                for b in turns[0]["content"]
                if not (b["type"] == "tool_result" and b["tool_use_id"] in dropped_calls)
            ]
            if kept:
                turns[0]["content"] = kept
            else:
                turns.pop(0)
    if leading:
        system_parts.append(LEADING_ASSISTANT_PREFIX + "\n\n".join(leading))
    return {"system": "\n\n".join(system_parts) if system_parts else None, "messages": turns}


def _langchain(kind: str, content: Any, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "content": content,
        "additional_kwargs": {},
        "response_metadata": {},
        "type": kind,
        "name": fields.pop("name", None),
        "id": fields.pop("id", None),
    }
    data.update(fields)
    return {"type": kind, "data": data}


def _langchain_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content") or ""
    ident = message.get("id")
    common = {"name": message.get("name") or None, "id": None if ident is None else str(ident)}
    if role == "assistant":
        tool_calls: list[dict[str, Any]] = []
        invalid: list[dict[str, Any]] = []
        for call in message.get("tool_calls") or ():
            function = _function(call)
            parsed, raw = _parse_arguments(function.get("arguments"))
            if parsed is None:
                invalid.append(
                    {
                        "name": function.get("name"),
                        "args": raw,
                        "id": call.get("id"),
                        "error": "arguments are not a JSON object",
                        "type": "invalid_tool_call",
                    }
                )
            else:
                tool_calls.append(
                    {
                        "name": function.get("name"),
                        "args": parsed,
                        "id": call.get("id"),
                        "type": "tool_call",
                    }
                )
        return _langchain(
            "ai",
            content,
            **common,
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            usage_metadata=None,
        )
    if role == "tool":
        return _langchain(
            "tool",
            content,
            **common,
            tool_call_id=message.get("tool_call_id"),
            artifact=None,
            status="success",
        )
    return _langchain("system" if role == "system" else "human", content, **common)


def langchain_messages(window: Window) -> list[dict[str, Any]]:
    """The window as LangChain message dicts (``messages_from_dict`` reads them)."""
    head: list[dict[str, Any]] = []
    if window.system_prompt is not None:
        head.append(_langchain("system", window.system_prompt))
    if window.summary is not None:
        head.append(_langchain("system", SUMMARY_PREFIX + window.summary))
    return head + [_langchain_message(m) for m in window.messages]


def render(window: Window, format: str | Format = Format.OPENAI) -> dict[str, Any]:
    """The context answer: ``{"format", "messages", "token_count", "summary", "truncated"}``,
    plus ``"system"`` for anthropic. Raises ``InvalidInput`` for an unknown format."""
    try:
        chosen = Format(format)
    except ValueError:
        raise InvalidInput(
            f"unknown format {format!r}; use one of: {', '.join(f.value for f in Format)}",
            format=format,
            allowed=[f.value for f in Format],
        ) from None
    answer: dict[str, Any] = {"format": chosen.value}
    if chosen is Format.OPENAI:
        answer["messages"] = openai_messages(window)
    elif chosen is Format.ANTHROPIC:
        payload = anthropic_payload(window)
        answer["system"] = payload["system"]
        answer["messages"] = payload["messages"]
    else:
        answer["messages"] = langchain_messages(window)
    answer["token_count"] = window.token_count
    answer["summary"] = window.summary
    answer["truncated"] = window.truncated
    return answer
