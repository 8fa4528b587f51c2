"""A conversation's context window, read from the store.

``conversation_window`` reads the newest messages page by page (``messages.list_range(...,
latest=True)``) only until the budget is surely filled, so a long thread costs a few pages,
not its whole history. It then builds the window (``context.window.build_window``) with
the agent's rendered system prompt and the latest summary:

- the summary is the one reaching furthest into the conversation (``summaries.latest``);
  when it covers messages the budget would otherwise fit, the window holds the messages
  after it, so no message is both summarised and shown;
- ``truncated`` is True when any older message is not in the window (left out for the
  budget, or summarised);
- messages of type ``event`` (channel notes, not dialogue) are never shown to a model.

"Surely filled": the messages read so far, less any tool results at the start of the
oldest page (their call may be on the page before), need more tokens than the budget left
after the system prompt. Reading more could then change nothing: ``build_window`` stops at
the first unit from the end that does not fit, and that unit is among those already read.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from threadline.agent.prompt import system_prompt
from threadline.context.messages import openai_message, system_message
from threadline.context.tokens import REPLY_PRIMING_TOKENS, TokenCounter, counter_for_model
from threadline.context.window import Window, build_window
from threadline.store import messages, summaries
from threadline.store.agents import Setting
from threadline.store.database import Database

#: The first page read, and the largest (each page doubles the one before).
FIRST_PAGE = 64
LARGEST_PAGE = 2048


def _visible(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("message_type") != "event"]


def _needed(counter: TokenCounter, rows: Sequence[Mapping[str, Any]]) -> int:
    start = 0
    while start < len(rows) and rows[start].get("role") == "tool":
        start += 1
    return sum(counter.count_message(openai_message(m)) for m in rows[start:])


def newest_messages(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    budget: int,
    model: str | None,
    after_seq: int | None = None,
) -> tuple[list[Mapping[str, Any]], bool]:
    """The newest messages (oldest first) that surely cover ``budget`` tokens, and whether
    older ones exist (above ``after_seq`` when given)."""
    counter = counter_for_model(model)
    rows: list[Mapping[str, Any]] = []
    before: int | None = None
    page = FIRST_PAGE
    more = True
    while more:
        got, more = messages.list_range(
            db,
            tenant_id,
            conversation_id,
            after_seq=after_seq,
            before_seq=before,
            limit=page,
            latest=True,
        )
        if not got:
            break
        before = got[0]["seq"]
        visible = _visible(got)
        rows = visible + rows
        needed = _needed(counter, rows)
        if needed > budget:
            break
        page = min(page * 2, LARGEST_PAGE)
    return rows, more


def conversation_window(
    db: Database,
    tenant_id: uuid.UUID,
    setting: Setting,
    *,
    max_tokens: int,
    model: str | None,
) -> Window:
    """The conversation's window: system prompt, summary and the newest messages that fit
    (see the module docstring). ``InvalidInput`` when the system prompt alone needs more
    than ``max_tokens``."""
    conversation_id = setting.conversation["id"]
    rendered = system_prompt(setting)
    prompt = None if rendered is None else rendered.prompt
    counter = counter_for_model(model)
    fixed = REPLY_PRIMING_TOKENS
    if prompt is not None:
        fixed += counter.count_message(system_message(prompt))
    budget = max(max_tokens - fixed, 0)
    rows, more = newest_messages(db, tenant_id, conversation_id, budget=budget, model=model)
    summary = summaries.latest(db, tenant_id, conversation_id)
    text = None if summary is None else summary["content"]
    window = build_window(
        rows, max_tokens=max_tokens, model=model, system_prompt=prompt, summary=text
    )
    covered = 0 if summary is None or window.summary is None else int(summary["to_seq"])
    if window.first_seq is not None and window.first_seq <= covered:
        after = [r for r in rows if r["seq"] > covered]
        window = build_window(
            after, max_tokens=max_tokens, model=model, system_prompt=prompt, summary=text
        )
    left_out = more or (bool(rows) and (not window.messages or window.messages[0] is not rows[0]))
    if left_out != window.truncated:
        window = dataclasses.replace(window, truncated=left_out)
    return window
