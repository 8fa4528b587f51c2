"""A conversation's context window, read from the store.

``conversation_window`` reads the newest messages page by page (``messages.list_range(...,
latest=True)``) only until the budget is surely filled, so a long thread costs a few pages,
not its whole history. It then builds the window (``context.window.build_window``) with
the agent's rendered system prompt and the latest summary:

- the summary is the one reaching furthest into the conversation (``summaries.latest``);
  when it covers messages the budget would otherwise fit, the window holds the messages
  after it, so no message is both summarised and shown. It is read first, and when it fits
  the budget only the messages after it are read (a long summarised thread costs one page);
- ``truncated`` is True when any older message is not in the window (left out for the
  budget, or summarised);
- messages of type ``event`` (channel notes, not dialogue) are never shown to a model.

With ``other_channels``, the system prompt is followed by a short note of what the contact
said in their other conversations (``other_channels_note``: "Earlier by SMS (...)", newest
conversation first, each with its latest lines), given at most ``OTHER_CHANNELS_SHARE`` of
the budget left after the system prompt, so the window still never exceeds ``max_tokens``.

With ``recall=N`` (``window_with_recall``), the system prompt (and any other-channels note)
is followed by a note of at most N older messages of the conversation that relate to the
newest customer message in the window, found by ``threadline.search.recall`` (by meaning
with an embedder and a database holding vectors, by words otherwise)::

    Relevant earlier messages (found by meaning; older than the messages shown):
    - #12, 2026-01-02 14:05 UTC, customer: My dog is allergic to chicken
    - #15, 2026-01-02 14:09 UTC, us: Noted, no chicken then.

Only messages older than the window built without the note are candidates, and the window
built beside the note never reaches further back than that one, so no message is both
recalled and shown. The note takes at most ``RECALL_SHARE`` of the budget left after the
system prompt; the window shrinks to make room, so ``max_tokens`` still holds. The most
relevant messages are kept first; the note lists them in conversation order, each line
clipped to ``OTHER_LINE_CHARS``.

"Surely filled": the messages read so far, less any tool results at the start of the
oldest page (their call may be on the page before), need more tokens than the budget left
after the system prompt. Reading more could then change nothing: ``build_window`` stops at
the first unit from the end that does not fit, and that unit is among those already read.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa

from threadline.agent.prompt import system_prompt
from threadline.context.messages import openai_message, system_message
from threadline.context.tokens import REPLY_PRIMING_TOKENS, TokenCounter, counter_for_model
from threadline.context.window import Window, build_window
from threadline.search import recall as search_recall
from threadline.search.embedders import Embedder
from threadline.store import messages, summaries
from threadline.store import search as search_store
from threadline.store.agents import Setting
from threadline.store.database import Database
from threadline.store.models import Conversation

#: The first page read, and the largest (each page doubles the one before).
FIRST_PAGE = 64
LARGEST_PAGE = 2048

#: The contact's other conversations a note covers at most, and the lines read from each.
OTHER_CONVERSATIONS = 5
OTHER_LINES = 20
#: The share of the budget (after the system prompt) an other-channels note may take.
OTHER_CHANNELS_SHARE = 0.25
#: The longest line quoted from one message.
OTHER_LINE_CHARS = 400
#: The most older messages a context may recall, and the share of the budget (after the
#: system prompt and any other-channels note) their note may take.
RECALL_MAX = 50
RECALL_SHARE = 0.25
RecallMode = Literal["semantic", "keyword"]
CHANNEL_NAMES = {
    "sms": "SMS",
    "whatsapp": "WhatsApp",
    "email": "email",
    "webchat": "web chat",
    "voice": "phone",
    "yelp": "Yelp",
    "api": "the API",
}


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


def _line(row: Mapping[str, Any]) -> str | None:
    if row.get("message_type") == "event" or row.get("role") not in ("user", "assistant"):
        return None
    text = " ".join(str(row.get("content") or "").split())
    if not text:
        return None
    if len(text) > OTHER_LINE_CHARS:
        text = text[: OTHER_LINE_CHARS - 3] + "..."
    return f"{'customer' if row['role'] == 'user' else 'us'}: {text}"


def other_channels_note(
    db: Database,
    tenant_id: uuid.UUID,
    setting: Setting,
    *,
    max_tokens: int,
    model: str | None,
) -> str | None:
    """What the conversation's contact said in their other conversations, within
    ``max_tokens`` (counted as text with the model's encoding): one block per conversation,
    newest first, headed "Earlier by SMS (last message 2026-01-02 14:05 UTC):" and holding
    its latest lines in order. None when there is nothing to say or no room."""
    contact_id = setting.conversation.get("contact_id")
    if contact_id is None or max_tokens <= 0:
        return None
    C = Conversation
    q = (
        sa.select(C.id, C.channel, C.last_message_at)
        .where(
            C.tenant_id == tenant_id,
            C.contact_id == contact_id,
            C.id != setting.conversation["id"],
            C.message_count > 0,
        )
        .order_by(C.last_activity_at.desc(), C.id.desc())
        .limit(OTHER_CONVERSATIONS)
    )
    with db.read() as s:
        others = s.execute(q).all()
    counter = counter_for_model(model)
    blocks: list[list[str]] = []
    left = max_tokens
    for other_id, channel, last_at in others:
        rows, _ = messages.list_range(db, tenant_id, other_id, limit=OTHER_LINES, latest=True)
        lines = [line for line in map(_line, rows) if line is not None]
        if not lines:
            continue
        name = CHANNEL_NAMES.get(str(channel), str(channel))
        when = "" if last_at is None else f" (last message {last_at:%Y-%m-%d %H:%M} UTC)"
        header = f"Earlier by {name}{when}:"
        cost = counter.count_text(header) + 1
        if cost >= left:
            break
        kept: list[str] = []
        for line in reversed(lines):  # the newest lines first, until the budget is spent
            need = counter.count_text(line) + 1
            if cost + need > left:
                break
            kept.insert(0, line)
            cost += need
        if not kept:
            break
        blocks.append([header, *kept])
        left -= cost
    while blocks:
        note = "\n\n".join("\n".join(block) for block in blocks)
        if counter.count_text(note) <= max_tokens:
            return note
        last = blocks[-1]
        if len(last) > 2:
            del last[1]  # the oldest line of the last block
        else:
            blocks.pop()
    return None


def conversation_window(
    db: Database,
    tenant_id: uuid.UUID,
    setting: Setting,
    *,
    max_tokens: int,
    model: str | None,
    other_channels: bool = False,
) -> Window:
    """The conversation's window: system prompt, summary and the newest messages that fit
    (see the module docstring). ``InvalidInput`` when the system prompt alone needs more
    than ``max_tokens``."""
    return _window(
        db,
        tenant_id,
        setting.conversation["id"],
        prompt=_prompt(db, tenant_id, setting, max_tokens, model, other_channels),
        max_tokens=max_tokens,
        model=model,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Recalled:
    """What ``window_with_recall`` added: how the messages were found, and the messages
    in the note (conversation order; empty when nothing older relates or fits)."""

    mode: RecallMode
    messages: tuple[Mapping[str, Any], ...]


def recall_mode(db: Database, embedder: Embedder | None) -> RecallMode:
    """``semantic`` when there is an embedder and the database holds vectors."""
    if embedder is not None and search_store.vectors_available(db):
        return "semantic"
    return "keyword"


def window_with_recall(
    db: Database,
    tenant_id: uuid.UUID,
    setting: Setting,
    *,
    max_tokens: int,
    model: str | None,
    recall: int,
    embedder: Embedder | None = None,
    other_channels: bool = False,
) -> tuple[Window, Recalled]:
    """``conversation_window`` with a note of up to ``recall`` older messages related to
    the newest customer message (see the module docstring)."""
    conversation_id = setting.conversation["id"]
    prompt = _prompt(db, tenant_id, setting, max_tokens, model, other_channels)
    window = _window(
        db, tenant_id, conversation_id, prompt=prompt, max_tokens=max_tokens, model=model
    )
    mode = recall_mode(db, embedder)
    question = next((m for m in reversed(window.messages) if m.get("role") == "user"), None)
    text = "" if question is None else str(question.get("content") or "")
    if recall <= 0 or window.first_seq is None or not text.strip():
        return window, Recalled(mode, ())
    found = search_recall(
        db,
        tenant_id,
        conversation_id,
        text,
        min(recall * 2, RECALL_MAX * 2),  # events and tool results are not quoted
        embedder=embedder if mode == "semantic" else None,
        before_seq=window.first_seq,
        exclude_id=None if question is None else question["id"],
    )
    counter = counter_for_model(model)
    fixed = REPLY_PRIMING_TOKENS
    if prompt is not None:
        fixed += counter.count_message(system_message(prompt))
    room = int((max_tokens - fixed) * RECALL_SHARE) - 2  # the blank line joining it
    note, kept = recall_note(found, limit=recall, max_tokens=room, model=model, mode=mode)
    if note is None:
        return window, Recalled(mode, ())
    prompt = note if prompt is None else f"{prompt}\n\n{note}"
    if REPLY_PRIMING_TOKENS + counter.count_message(system_message(prompt)) > max_tokens:
        return window, Recalled(mode, ())  # cannot happen with RECALL_SHARE < 1; never 422
    shrunk = _window(
        db,
        tenant_id,
        conversation_id,
        prompt=prompt,
        max_tokens=max_tokens,
        model=model,
        from_seq=window.first_seq,
    )
    return shrunk, Recalled(mode, kept)


def recall_note(
    found: Sequence[Mapping[str, Any]],
    *,
    limit: int,
    max_tokens: int,
    model: str | None,
    mode: RecallMode,
) -> tuple[str | None, tuple[Mapping[str, Any], ...]]:
    """The note of recalled messages (``found`` most relevant first) within ``max_tokens``
    (counted as text), and the messages it lists (conversation order). ``(None, ())`` when
    none is quoted."""
    if max_tokens <= 0:
        return None, ()
    counter = counter_for_model(model)
    how = "meaning" if mode == "semantic" else "words"
    header = f"Relevant earlier messages (found by {how}; older than the messages shown):"
    left = max_tokens - counter.count_text(header) - 1
    chosen: list[tuple[Mapping[str, Any], str]] = []
    for message in found:  # the most relevant first, while they fit
        if len(chosen) >= limit:
            break
        line = _line(message)
        if line is None:
            continue
        at = message.get("created_at")
        when = "" if at is None else f", {at:%Y-%m-%d %H:%M} UTC"
        line = f"- #{message['seq']}{when}, {line}"
        cost = counter.count_text(line) + 1
        if cost <= left:
            chosen.append((message, line))
            left -= cost
    while chosen:
        chosen.sort(key=lambda pair: int(pair[0]["seq"]))
        note = "\n".join([header, *(line for _, line in chosen)])
        if counter.count_text(note) <= max_tokens:
            return note, tuple(message for message, _ in chosen)
        chosen.pop(max(range(len(chosen)), key=lambda i: found.index(chosen[i][0])))
    return None, ()


def _prompt(
    db: Database,
    tenant_id: uuid.UUID,
    setting: Setting,
    max_tokens: int,
    model: str | None,
    other_channels: bool,
) -> str | None:
    """The agent's rendered system prompt, followed by the other-channels note if asked."""
    rendered = system_prompt(setting)
    prompt = None if rendered is None else rendered.prompt
    if other_channels:
        counter = counter_for_model(model)
        fixed = REPLY_PRIMING_TOKENS
        if prompt is not None:
            fixed += counter.count_message(system_message(prompt))
        room = int((max_tokens - fixed) * OTHER_CHANNELS_SHARE)
        note = other_channels_note(db, tenant_id, setting, max_tokens=room - 2, model=model)
        if note is not None:
            prompt = note if prompt is None else f"{prompt}\n\n{note}"
    return prompt


def _window(
    db: Database,
    tenant_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    prompt: str | None,
    max_tokens: int,
    model: str | None,
    from_seq: int | None = None,
) -> Window:
    """The window beside ``prompt``; with ``from_seq``, of messages from that seq on only
    (older messages are known to exist: the window is then truncated)."""
    counter = counter_for_model(model)
    fixed = REPLY_PRIMING_TOKENS
    if prompt is not None:
        fixed += counter.count_message(system_message(prompt))
    budget = max(max_tokens - fixed, 0)
    floor = None if from_seq is None else from_seq - 1
    summary = summaries.latest(db, tenant_id, conversation_id)
    text = None if summary is None else summary["content"]
    if summary is not None:
        # Only the messages after the summary can be shown beside it: read those alone.
        after_summary, _ = newest_messages(
            db,
            tenant_id,
            conversation_id,
            budget=budget,
            model=model,
            after_seq=max(int(summary["to_seq"]), -1 if floor is None else floor),
        )
        window = build_window(
            after_summary, max_tokens=max_tokens, model=model, system_prompt=prompt, summary=text
        )
        if window.summary is not None:  # it fits: everything up to it is summarised
            return window if window.truncated else dataclasses.replace(window, truncated=True)
    rows, more = newest_messages(
        db, tenant_id, conversation_id, budget=budget, model=model, after_seq=floor
    )
    window = build_window(
        rows, max_tokens=max_tokens, model=model, system_prompt=prompt, summary=text
    )
    covered = 0 if summary is None or window.summary is None else int(summary["to_seq"])
    if window.first_seq is not None and window.first_seq <= covered:
        after = [r for r in rows if r["seq"] > covered]
        window = build_window(
            after, max_tokens=max_tokens, model=model, system_prompt=prompt, summary=text
        )
    left_out = (
        more
        or from_seq is not None
        or (bool(rows) and (not window.messages or window.messages[0] is not rows[0]))
    )
    if left_out != window.truncated:
        window = dataclasses.replace(window, truncated=left_out)
    return window
