"""GET /v1/conversations/{id}/context: the window read from the store, on both backends."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_context_window import conversations as histories
from test_context_window import pairing_holds
from threadline.agent import context as agent_context
from threadline.agent.context import conversation_window
from threadline.context.tokens import counter_for_model
from threadline.context.window import build_window
from threadline.store import agents, conversations, messages, summaries
from threadline.store.database import Database

Json = dict[str, Any]


def _post(api: TestClient, conv: Json, items: list[Json]) -> list[Json]:
    r = api.post(f"/v1/conversations/{conv['id']}/messages/batch", json={"messages": items})
    assert r.status_code == 201, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _agent(api: TestClient, conv: Json, **fields: Any) -> Json:
    body = {"name": "Front desk", "model": "gpt-4o"} | fields
    r = api.post("/v1/agents", json=body)
    assert r.status_code == 201, r.text
    agent = r.json()
    r = api.patch(f"/v1/conversations/{conv['id']}", json={"assignee_id": agent["id"]})
    assert r.status_code == 200, r.text
    return agent  # type: ignore[no-any-return]


def test_context_has_the_rendered_prompt_and_the_newest_messages(
    api: TestClient, conversation: Json
) -> None:
    _agent(api, conversation, system_prompt="Help {{ contact_first_name }} of <business_name/>.")
    _post(api, conversation, [{"role": "user", "content": f"message {i}"} for i in range(30)])
    r = api.get(f"/v1/conversations/{conversation['id']}/context", params={"max_tokens": 60})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"format", "messages", "token_count", "summary", "truncated"}
    assert body["format"] == "openai"
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][0]["content"].startswith("Help Ada of ")
    shown = [m["content"] for m in body["messages"][1:]]
    assert shown and shown[-1] == "message 29"
    assert shown == [f"message {i}" for i in range(30 - len(shown), 30)]
    assert body["truncated"] is True
    assert body["token_count"] <= 60
    assert body["token_count"] == counter_for_model("gpt-4o").count_messages(body["messages"])


def test_context_formats(api: TestClient, conversation: Json) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"order": 7}'},
    }
    _post(
        api,
        conversation,
        [
            {"role": "user", "content": "where is my order?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
            {"role": "assistant", "content": "It shipped."},
        ],
    )
    url = f"/v1/conversations/{conversation['id']}/context"
    openai = api.get(url).json()
    assert openai["messages"][1]["tool_calls"] == [call]
    assert openai["truncated"] is False
    anthropic = api.get(url, params={"format": "anthropic"}).json()
    assert anthropic["system"] is None
    assert anthropic["messages"][1]["content"][0]["type"] == "tool_use"
    assert anthropic["messages"][1]["content"][0]["input"] == {"order": 7}
    langchain = api.get(url, params={"format": "langchain"}).json()
    assert [m["type"] for m in langchain["messages"]] == ["human", "ai", "tool", "ai"]


def test_context_bad_input(api: TestClient, conversation: Json) -> None:
    url = f"/v1/conversations/{conversation['id']}/context"
    assert api.get(url, params={"format": "xml"}).status_code == 422
    assert api.get(url, params={"max_tokens": 0}).status_code == 422
    assert api.get(url, params={"maxtokens": 5}).status_code == 422
    _agent(api, conversation, system_prompt="A long prompt. " * 50)
    r = api.get(url, params={"max_tokens": 20})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["required"] > 20
    assert "system prompt" in r.json()["error"]["message"]
    other = "019a0000-0000-7000-8000-000000000000"
    assert api.get(f"/v1/conversations/{other}/context").status_code == 404


def test_summary_covers_what_came_before(
    api: TestClient, conversation: Json, db: Database, tenant: Any
) -> None:
    _post(api, conversation, [{"role": "user", "content": f"m{i}"} for i in range(10)])
    import uuid

    conv_id = uuid.UUID(conversation["id"])
    summaries.add(
        db,
        tenant.tenant_id,
        conv_id,
        from_seq=1,
        to_seq=6,
        content="Ada asked.",
        model="m",
        token_count=3,
    )
    body = api.get(f"/v1/conversations/{conversation['id']}/context").json()
    assert body["summary"] == "Ada asked."
    assert [m["content"] for m in body["messages"][1:]] == ["m6", "m7", "m8", "m9"]
    assert body["truncated"] is True


def test_a_long_thread_is_read_a_few_pages_at_most(
    db: Database, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    for start in range(0, 3000, 1000):
        items = [
            {"role": "user", "content": f"message number {i}"} for i in range(start, start + 1000)
        ]
        messages.append(db, tenant.tenant_id, conv.id, items)
    read: list[int] = []
    real = messages.list_range

    def counting(*args: Any, **kwargs: Any) -> Any:
        rows, more = real(*args, **kwargs)
        read.append(len(rows))
        return rows, more

    monkeypatch.setattr(agent_context.messages, "list_range", counting)
    setting = agents.setting(db, tenant.tenant_id, conv.id)
    window = conversation_window(db, tenant.tenant_id, setting, max_tokens=500, model="gpt-4o")
    assert window.messages[-1]["content"] == "message number 2999"
    assert sum(read) < 200


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    # The API refuses NUL characters before they reach the store.
    history=histories().filter(lambda h: "\\u0000" not in json.dumps(h)),
    max_tokens=st.integers(min_value=4, max_value=600),
    first_page=st.sampled_from([1, 2, 3, 64]),
)
def test_stored_history_gives_the_same_window_as_the_whole_history(
    db: Database, tenant: Any, history: list[Json], max_tokens: int, first_page: int
) -> None:
    """Whatever is stored and whatever the page size, the window read page by page is the
    window of the whole history: never over budget, tool calls never split."""
    conv = conversations.create(db, tenant.tenant_id, {"channel": "api"})
    items = [
        {k: v for k, v in m.items() if k not in ("id", "seq") and v is not None} for m in history
    ]
    if items:
        messages.append(db, tenant.tenant_id, conv.id, items)
    stored, _ = messages.list_range(db, tenant.tenant_id, conv.id, limit=1000)
    setting = agents.setting(db, tenant.tenant_id, conv.id)
    original = agent_context.FIRST_PAGE
    agent_context.FIRST_PAGE = first_page
    try:
        window = conversation_window(
            db, tenant.tenant_id, setting, max_tokens=max_tokens, model="gpt-4o"
        )
    finally:
        agent_context.FIRST_PAGE = original
    whole = build_window(stored, max_tokens=max_tokens, model="gpt-4o")
    assert window.token_count <= max_tokens
    assert [m["seq"] for m in window.messages] == [m["seq"] for m in whole.messages]
    assert window.token_count == whole.token_count
    assert window.token_count == counter_for_model("gpt-4o").count_messages(
        window.openai_messages()
    )
    pairing_holds(window)
    for got, sent in zip(
        window.messages, history[len(history) - len(window.messages) :], strict=True
    ):
        assert got["role"] == sent["role"]
        if sent.get("tool_calls"):
            assert json.dumps(got["tool_calls"]) == json.dumps(sent["tool_calls"])
