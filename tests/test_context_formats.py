"""The three context formats: OpenAI, Anthropic and LangChain, and render()."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, messages_from_dict, messages_to_dict

from test_context_window import conversations
from threadline.context.formats import (
    LEADING_ASSISTANT_PREFIX,
    anthropic_payload,
    langchain_messages,
    render,
)
from threadline.context.messages import SUMMARY_PREFIX
from threadline.context.tokens import counter_for_model
from threadline.context.window import build_window
from threadline.domain.errors import InvalidInput

WEATHER_ARGS = '{"location":"Paris, FR",  "unit": "celsius"}'  # odd spacing kept as sent
HISTORY: list[dict[str, Any]] = [
    {"id": "m1", "seq": 1, "role": "user", "content": "Weather in Paris and Rome?", "name": "jane"},
    {
        "id": "m2",
        "seq": 2,
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location": "Rome'},
            },
        ],
    },
    {"id": "m3", "seq": 3, "role": "tool", "content": "18C sunny", "tool_call_id": "call_a"},
    {"id": "m4", "seq": 4, "role": "tool", "content": "error: bad JSON", "tool_call_id": "call_b"},
    {"id": "m5", "seq": 5, "role": "assistant", "content": "Paris is 18C and sunny."},
    {"id": "m6", "seq": 6, "role": "system", "content": "Assigned to Sam."},
    {"id": "m7", "seq": 7, "role": "user", "content": "Thanks!"},
    {"id": "m8", "seq": 8, "role": "user", "content": "And tomorrow?"},
]


def window(history: list[dict[str, Any]] = HISTORY, **kwargs: Any) -> Any:
    kwargs.setdefault("max_tokens", 10_000)
    kwargs.setdefault("model", "gpt-4o")
    return build_window(history, **kwargs)


def test_openai_round_trips_tool_calls_byte_for_byte() -> None:
    w = window(system_prompt="You are a weather bot.", summary="Jane asked about Lyon.")
    answer = render(w, "openai")
    messages = answer["messages"]
    assert messages[0] == {"role": "system", "content": "You are a weather bot."}
    assert messages[1] == {"role": "system", "content": SUMMARY_PREFIX + "Jane asked about Lyon."}
    assert messages[2] == {"role": "user", "content": "Weather in Paris and Rome?", "name": "jane"}
    assert json.dumps(messages[3]["tool_calls"]) == json.dumps(HISTORY[1]["tool_calls"])
    assert messages[3]["content"] is None
    assert messages[4] == {"role": "tool", "content": "18C sunny", "tool_call_id": "call_a"}
    assert [m["role"] for m in messages[6:]] == ["assistant", "system", "user", "user"]
    assert answer["token_count"] == counter_for_model("gpt-4o").count_messages(messages)
    assert set(answer) == {"format", "messages", "token_count", "summary", "truncated"}
    assert (answer["format"], answer["summary"], answer["truncated"]) == (
        "openai",
        "Jane asked about Lyon.",
        False,
    )


def test_anthropic_payload_for_a_tool_conversation() -> None:
    w = window(system_prompt="You are a weather bot.", summary="Jane asked about Lyon.")
    answer = render(w, "anthropic")
    assert answer["system"] == (
        "You are a weather bot.\n\n" + SUMMARY_PREFIX + "Jane asked about Lyon.\n\nAssigned to Sam."
    )
    assert answer["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_a",
                    "name": "get_weather",
                    "input": {"location": "Paris, FR", "unit": "celsius"},
                },
                {
                    "type": "tool_use",
                    "id": "call_b",
                    "name": "get_weather",
                    "input": {"raw_arguments": '{"location": "Rome'},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "18C sunny"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "error: bad JSON"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Paris is 18C and sunny."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Thanks!"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    assert set(answer) == {"format", "system", "messages", "token_count", "summary", "truncated"}


def test_anthropic_moves_leading_assistant_text_to_system() -> None:
    history = [
        {"id": "a", "seq": 1, "role": "assistant", "content": "Hi Jane, thanks for your request!"},
        {
            "id": "b",
            "seq": 2,
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        },
        {"id": "d", "seq": 3, "role": "tool", "content": "ok", "tool_call_id": "c"},
        {"id": "e", "seq": 4, "role": "user", "content": "Tomorrow at 3pm works."},
    ]
    payload = anthropic_payload(window(history))
    assert payload["system"] == LEADING_ASSISTANT_PREFIX + (
        "Hi Jane, thanks for your request!\n\nLet me check."
    )
    assert payload["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Tomorrow at 3pm works."}]}
    ]
    empty = anthropic_payload(window([]))
    assert empty == {"system": None, "messages": []}


def anthropic_rules_hold(payload: dict[str, Any]) -> None:
    turns = payload["messages"]
    assert not turns or turns[0]["role"] == "user"
    for before, after in itertools.pairwise(turns):
        assert before["role"] != after["role"]
    for i, turn in enumerate(turns):
        assert turn["role"] in ("user", "assistant") and turn["content"]
        for block in turn["content"]:
            if block["type"] == "text":
                assert block["text"]
            if block["type"] == "tool_use":
                assert isinstance(block["input"], dict)
        uses = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
        if uses:
            results = [
                b["tool_use_id"] for b in turns[i + 1]["content"] if b["type"] == "tool_result"
            ]
            assert sorted(results) == sorted(uses)
        if turn["role"] == "user":
            kinds = [b["type"] for b in turn["content"]]
            # tool results come first in their turn, each answering the turn before
            assert kinds == sorted(kinds, key=lambda k: k != "tool_result")
            answered = [b["tool_use_id"] for b in turn["content"] if b["type"] == "tool_result"]
            if answered:
                asked = [b["id"] for b in turns[i - 1]["content"] if b["type"] == "tool_use"]
                assert sorted(answered) == sorted(asked)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=conversations(malformed=True),
    max_tokens=st.integers(min_value=3, max_value=1500),
    system_prompt=st.none() | st.text(max_size=50),
)
def test_every_format_is_valid_for_any_window(
    history: list[dict[str, Any]], max_tokens: int, system_prompt: str | None
) -> None:
    try:
        w = build_window(
            history, max_tokens=max_tokens, model="gpt-4o", system_prompt=system_prompt
        )
    except InvalidInput:
        return
    anthropic_rules_hold(render(w, "anthropic"))
    openai = render(w, "openai")["messages"]
    assert len(openai) == len(w.messages) + (system_prompt is not None)
    lc = render(w, "langchain")["messages"]
    assert messages_to_dict(messages_from_dict(lc)) == lc


def test_langchain_dicts_load_and_keep_tool_calls() -> None:
    w = window(system_prompt="You are a weather bot.")
    dicts = render(w, "langchain")["messages"]
    assert messages_to_dict(messages_from_dict(dicts)) == dicts
    loaded = messages_from_dict(dicts)
    assert [m.type for m in loaded] == [
        "system",
        "human",
        "ai",
        "tool",
        "tool",
        "ai",
        "system",
        "human",
        "human",
    ]
    call_turn = loaded[2]
    assert isinstance(call_turn, AIMessage)
    assert call_turn.tool_calls == [
        {
            "name": "get_weather",
            "args": json.loads(WEATHER_ARGS),
            "id": "call_a",
            "type": "tool_call",
        }
    ]
    assert call_turn.invalid_tool_calls[0]["args"] == '{"location": "Rome'
    assert call_turn.invalid_tool_calls[0]["id"] == "call_b"
    assert loaded[3].tool_call_id == "call_a"  # type: ignore[attr-defined]
    assert loaded[1].name == "jane" and loaded[1].id == "m1"


def test_langchain_summary_is_a_system_message() -> None:
    dicts = langchain_messages(window([], summary="Earlier: a refund."))
    assert dicts[0]["type"] == "system"
    assert dicts[0]["data"]["content"] == SUMMARY_PREFIX + "Earlier: a refund."


def test_render_refuses_an_unknown_format() -> None:
    with pytest.raises(InvalidInput) as raised:
        render(window(), "gemini")
    assert raised.value.details["allowed"] == ["openai", "anthropic", "langchain"]
