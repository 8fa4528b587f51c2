"""Context windows: budget, order, tool-call units, summary, truncation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadline.context.messages import openai_message, summary_message, system_message, units
from threadline.context.tokens import counter_for_model
from threadline.context.window import Window, build_window
from threadline.domain.errors import InvalidInput

MODELS = ["gpt-4o", "gpt-4", "claude-3-5-sonnet-latest"]

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40
)
names = st.sampled_from(["lookup_order", "get_weather", "book_table", "escalate"])


@st.composite
def conversations(draw: st.DrawFn, *, malformed: bool = False) -> list[dict[str, Any]]:
    """Random stored histories (seq 1..n) with plain turns, system notes and tool-call
    groups (1-3 calls, results in any order). With ``malformed``: also orphan results,
    calls left unanswered, and results out of place."""
    kinds = ["user", "assistant", "system", "tools"] + (
        ["orphan", "unanswered"] if malformed else []
    )
    out: list[dict[str, Any]] = []
    calls_made = 0

    def add(role: str, **fields: Any) -> None:
        out.append({"id": f"m{len(out) + 1}", "seq": len(out) + 1, "role": role, **fields})

    for kind in draw(st.lists(st.sampled_from(kinds), max_size=25)):
        if kind in ("user", "assistant", "system"):
            name = draw(st.none() | st.sampled_from(["jane", "bot"]))
            add(kind, content=draw(words), name=name, tool_calls=None)
        elif kind == "orphan":
            # A result nobody asked for, or a late second answer to an earlier call.
            earlier = [f"call_{i}" for i in range(1, calls_made + 1)]
            call_id = draw(st.sampled_from(["ghost", *earlier]))
            add("tool", content=draw(words), tool_call_id=call_id)
        else:
            n = draw(st.integers(1, 3))
            calls = []
            for _ in range(n):
                calls_made += 1
                args = draw(st.dictionaries(st.sampled_from("abc"), words, max_size=2))
                calls.append(
                    {
                        "id": f"call_{calls_made}",
                        "type": "function",
                        "function": {"name": draw(names), "arguments": json.dumps(args)},
                    }
                )
            add("assistant", content=draw(st.none() | words), tool_calls=calls)
            answered = draw(st.permutations([c["id"] for c in calls]))
            if kind == "unanswered":
                answered = answered[: draw(st.integers(0, len(answered) - 1))]
            for call_id in answered:
                add("tool", content=draw(words), tool_call_id=call_id, name=None)
    return out


def pairing_holds(window: Window) -> None:
    """No tool result without its call before it, no call without all its results, and the
    window does not start with a tool result."""
    msgs = window.messages
    assert not msgs or msgs[0]["role"] != "tool"
    open_calls: set[str] = set()
    for m in msgs:
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_calls
            open_calls.discard(m["tool_call_id"])
        else:
            assert not open_calls, "a call was left without its result"
        if m["role"] == "assistant" and m.get("tool_calls"):
            open_calls = {c["id"] for c in m["tool_calls"]}
    assert not open_calls


def fixed_tokens(model: str, system_prompt: str | None, summary: str | None) -> int:
    counter = counter_for_model(model)
    head = [system_message(system_prompt)] if system_prompt is not None else []
    head += [summary_message(summary)] if summary is not None else []
    return counter.count_messages(head)


budgets = st.integers(min_value=1, max_value=1500)
prompts = st.none() | st.text(min_size=0, max_size=300)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=conversations(),
    max_tokens=budgets,
    model=st.sampled_from(MODELS),
    system_prompt=prompts,
    summary=st.none() | words,
)
def test_window_properties(
    history: list[dict[str, Any]],
    max_tokens: int,
    model: str,
    system_prompt: str | None,
    summary: str | None,
) -> None:
    counter = counter_for_model(model)
    if fixed_tokens(model, system_prompt, None) > max_tokens:
        with pytest.raises(InvalidInput) as raised:
            build_window(history, max_tokens=max_tokens, model=model, system_prompt=system_prompt)
        assert raised.value.details["required"] > max_tokens
        return
    window = build_window(
        history, max_tokens=max_tokens, model=model, system_prompt=system_prompt, summary=summary
    )
    # Never over budget, and the count is exactly tiktoken's count of what is sent.
    assert window.token_count <= max_tokens
    assert window.token_count == counter.count_messages(window.openai_messages())
    # The newest messages, in order, and nothing else.
    n = len(window.messages)
    assert list(window.messages) == history[len(history) - n :]
    assert window.first_seq == (window.messages[0]["seq"] if n else None)
    assert window.truncated == (n < len(history))
    assert window.skipped == ()
    pairing_holds(window)
    # As much as fits: the unit just before the window would break the budget.
    all_units, _ = units(history)
    kept_units = len(units(list(window.messages))[0])
    if window.truncated:
        older = all_units[len(all_units) - kept_units - 1]
        extra = sum(counter.count_message(openai_message(m)) for m in older.messages)
        assert window.token_count + extra > max_tokens
    # The summary goes only when keeping it would leave out even the newest message.
    if summary is not None and window.summary is None:
        newest = (
            sum(counter.count_message(openai_message(m)) for m in all_units[-1].messages)
            if all_units
            else 0  # no history: it goes only when it does not fit at all
        )
        assert fixed_tokens(model, system_prompt, summary) + newest > max_tokens
    if summary is not None and window.summary is not None:
        assert window.summary == summary


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=conversations(malformed=True),
    max_tokens=st.integers(min_value=3, max_value=1500),
    model=st.sampled_from(MODELS),
)
def test_malformed_histories_never_give_a_broken_window(
    history: list[dict[str, Any]], max_tokens: int, model: str
) -> None:
    window = build_window(history, max_tokens=max_tokens, model=model)
    assert window.token_count <= max_tokens
    assert window.token_count == counter_for_model(model).count_messages(window.openai_messages())
    pairing_holds(window)
    seqs = [m["seq"] for m in window.messages]
    assert seqs == sorted(seqs)
    # Whatever lies between the window's first message and the end is in it or skipped.
    if window.messages:
        later = [m for m in history if m["seq"] >= window.messages[0]["seq"]]
        assert sorted(m["seq"] for m in (*window.messages, *window.skipped)) == [
            m["seq"] for m in later
        ]


def msg(seq: int, role: str, content: str | None = "x", **fields: Any) -> dict[str, Any]:
    return {"id": f"m{seq}", "seq": seq, "role": role, "content": content, **fields}


def call(call_id: str, name: str = "lookup_order", arguments: str = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_call_and_its_results_go_in_together_or_not_at_all() -> None:
    history = [
        msg(1, "user", "where is my order 42?"),
        msg(2, "assistant", None, tool_calls=[call("c1"), call("c2")]),
        msg(3, "tool", "shipped", tool_call_id="c1"),
        msg(4, "tool", "arrives friday", tool_call_id="c2"),
        msg(5, "assistant", "It shipped and arrives Friday."),
    ]
    counter = counter_for_model("gpt-4o")
    cost = [counter.count_message(openai_message(m)) for m in history]
    last_only = 3 + cost[4]
    # One token short of the tool group: only the last message.
    window = build_window(history, max_tokens=last_only + sum(cost[1:4]) - 1, model="gpt-4o")
    assert [m["seq"] for m in window.messages] == [5]
    assert window.truncated and window.first_seq == 5
    window = build_window(history, max_tokens=last_only + sum(cost[1:4]), model="gpt-4o")
    assert [m["seq"] for m in window.messages] == [2, 3, 4, 5]


def test_orphans_and_unanswered_calls_are_skipped() -> None:
    history = [
        msg(1, "tool", "orphan", tool_call_id="nobody"),
        msg(2, "user", "hi"),
        msg(3, "assistant", None, tool_calls=[call("c1"), call("c2")]),
        msg(4, "tool", "only one answer", tool_call_id="c1"),
        msg(5, "user", "hello?"),
        msg(6, "assistant", None, tool_calls=[call("c3")]),  # still waiting for its result
    ]
    window = build_window(history, max_tokens=10_000, model="gpt-4o")
    assert [m["seq"] for m in window.messages] == [2, 5]
    assert [m["seq"] for m in window.skipped] == [3, 4, 6]
    assert not window.truncated


def test_a_system_prompt_too_big_for_the_budget_is_invalid_input() -> None:
    prompt = "You are a helpful receptionist. " * 20
    needed = counter_for_model("gpt-4o").count_messages([system_message(prompt)])
    with pytest.raises(InvalidInput) as raised:
        build_window([msg(1, "user")], max_tokens=needed - 1, model="gpt-4o", system_prompt=prompt)
    assert raised.value.details == {"max_tokens": needed - 1, "required": needed}
    assert "system prompt" in raised.value.message
    window = build_window([], max_tokens=needed, model="gpt-4o", system_prompt=prompt)
    assert window.token_count == needed and window.messages == ()


@pytest.mark.parametrize("budget", [0, -5])
def test_a_budget_that_is_not_positive_is_invalid_input(budget: int) -> None:
    with pytest.raises(InvalidInput):
        build_window([], max_tokens=budget, model="gpt-4o")


def test_summary_gives_way_only_to_the_newest_message() -> None:
    history = [msg(1, "user", "first"), msg(2, "user", "the question that needs an answer")]
    summary = "The contact asked about prices twice and was sent the brochure. " * 5
    counter = counter_for_model("gpt-4o")
    newest = counter.count_message(openai_message(history[1]))
    with_summary = counter.count_messages([summary_message(summary)])
    window = build_window(
        history, max_tokens=with_summary + newest, model="gpt-4o", summary=summary
    )
    assert window.summary == summary and [m["seq"] for m in window.messages] == [2]
    window = build_window(
        history, max_tokens=with_summary + newest - 1, model="gpt-4o", summary=summary
    )
    assert window.summary is None and [m["seq"] for m in window.messages] == [1, 2]
    assert not window.truncated


def test_window_reports_model_encoding_and_estimate() -> None:
    exact = build_window([msg(1, "user")], max_tokens=100, model="gpt-4")
    assert (exact.encoding, exact.exact) == ("cl100k_base", True)
    estimate = build_window([msg(1, "user")], max_tokens=100, model="claude-3-5-haiku")
    assert (estimate.encoding, estimate.exact) == ("o200k_base", False)
