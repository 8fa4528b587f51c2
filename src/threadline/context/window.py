"""The context window: what of a conversation a model sees, within a token budget.

``build_window`` guarantees, for any history and any budget:

- ``token_count <= max_tokens``, where ``token_count`` is exactly
  ``counter_for_model(model).count_messages(...)`` of the window as OpenAI chat messages
  (system prompt, summary, history, reply priming; see ``tokens``);
- ``messages`` is the newest part of the history, in the same order, with nothing left
  out in between except malformed tool messages (``skipped``, see ``messages.units``);
- an assistant message with tool calls is in the window exactly when all of its tool
  results are, and the window never starts with a tool result;
- the system prompt is always in; when it alone does not fit, ``InvalidInput`` says how
  many tokens it needs. There is no silent truncation of a prompt or a message: a
  message is in whole or not at all.
- the summary (text covering what came before ``messages``) comes next: it is left out
  only when keeping it would leave out even the newest message, or when it does not fit
  beside the system prompt at all (``Window.summary`` is then None);
- ``truncated`` is True exactly when older well-formed messages were left out for the
  budget.

Messages are used as given (oldest first, in ``seq`` order); filter out what the model
must not see (events, drafts) before calling. Pure: no database, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from threadline.context.messages import (
    Unit,
    openai_message,
    summary_message,
    system_message,
    units,
)
from threadline.context.tokens import REPLY_PRIMING_TOKENS, TokenCounter, counter_for_model
from threadline.domain.errors import InvalidInput

__all__ = ["Window", "build_window"]


@dataclass(frozen=True, slots=True)
class Window:
    """A context window (see the module docstring for what is guaranteed).

    ``messages`` are the stored messages as given, ``first_seq`` the ``seq`` of the first
    (None for an empty window), ``encoding`` the tiktoken encoding counted with and
    ``exact`` False when the model was unknown and the count is an estimate.
    """

    messages: tuple[Mapping[str, Any], ...]
    token_count: int
    truncated: bool
    summary: str | None
    system_prompt: str | None
    first_seq: int | None
    model: str | None
    encoding: str
    exact: bool
    skipped: tuple[Mapping[str, Any], ...] = ()

    def openai_messages(self) -> list[dict[str, Any]]:
        """The window as OpenAI chat messages: the ones ``token_count`` counts."""
        head: list[dict[str, Any]] = []
        if self.system_prompt is not None:
            head.append(system_message(self.system_prompt))
        if self.summary is not None:
            head.append(summary_message(self.summary))
        return head + [openai_message(m) for m in self.messages]


def _unit_tokens(counter: TokenCounter, unit: Unit) -> int:
    return sum(counter.count_message(openai_message(m)) for m in unit.messages)


def _newest_that_fit(
    counter: TokenCounter, all_units: Sequence[Unit], budget: int
) -> tuple[int, int]:
    """``(how many units from the end fit in budget, their tokens)``; stops at the first
    unit that does not fit, so the window stays contiguous."""
    used = 0
    taken = 0
    for unit in reversed(all_units):
        cost = _unit_tokens(counter, unit)
        if used + cost > budget:
            break
        used += cost
        taken += 1
    return taken, used


def build_window(
    messages: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int,
    model: str | None,
    system_prompt: str | None = None,
    summary: str | None = None,
) -> Window:
    """The system prompt, the summary and the newest messages that fit in ``max_tokens``.

    Raises ``InvalidInput`` when ``max_tokens`` is not positive or the system prompt (with
    the reply priming) alone needs more than ``max_tokens``; its details carry
    ``max_tokens`` and ``required``.
    """
    if max_tokens <= 0:
        raise InvalidInput("max_tokens must be a positive number", max_tokens=max_tokens)
    counter = counter_for_model(model)
    fixed = REPLY_PRIMING_TOKENS
    if system_prompt is not None:
        fixed += counter.count_message(system_message(system_prompt))
    if fixed > max_tokens:
        what = "the system prompt" if system_prompt is not None else "a request"
        raise InvalidInput(
            f"max_tokens={max_tokens} is too small: {what} alone needs {fixed} tokens",
            max_tokens=max_tokens,
            required=fixed,
        )

    all_units, malformed = units(messages)
    taken, used = 0, 0
    if summary is not None:
        with_summary = fixed + counter.count_message(summary_message(summary))
        if with_summary <= max_tokens:
            taken, used = _newest_that_fit(counter, all_units, max_tokens - with_summary)
        if with_summary <= max_tokens and (taken > 0 or not all_units):
            fixed = with_summary
        else:
            summary = None
    if summary is None:
        taken, used = _newest_that_fit(counter, all_units, max_tokens - fixed)

    chosen = all_units[len(all_units) - taken :]
    window_messages = tuple(m for unit in chosen for m in unit.messages)
    first_seq = window_messages[0].get("seq") if window_messages else None
    skipped: tuple[Mapping[str, Any], ...] = ()
    if window_messages and malformed:
        position = {id(m): i for i, m in enumerate(messages)}
        start = position[id(window_messages[0])]
        skipped = tuple(m for m in malformed if position[id(m)] > start)
    return Window(
        messages=window_messages,
        token_count=fixed + used,
        truncated=taken < len(all_units),
        summary=summary,
        system_prompt=system_prompt,
        first_seq=first_seq,
        model=model,
        encoding=counter.encoding_name,
        exact=counter.exact,
        skipped=skipped,
    )
