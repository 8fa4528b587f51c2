"""``threadline mcp`` driven by the mcp SDK's own client: over stdio (and streamable HTTP)
against a live Threadline server, and in process for the errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from conftest import make_tenant
from live import LiveServer, free_port, threadline_env
from threadline.client import AsyncThreadline, Threadline
from threadline.integrations.mcp import TOOLS, create_server
from threadline.store import Database


def _payload(result: Any) -> Any:
    """A tool's answer: its structured content, else its text parsed as JSON."""
    if getattr(result, "structured_content", None) is not None:
        data = result.structured_content
        return data.get("result", data) if isinstance(data, dict) else data
    return json.loads(result.content[0].text)


def _error(result: Any) -> str:
    assert result.is_error, result
    return str(result.content[0].text)


async def _exercise(client: Client, conversation_id: str) -> None:
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == set(TOOLS)

    appended = _payload(
        await client.call_tool(
            "append_message",
            {"conversation_id": conversation_id, "role": "user", "content": "Is Friday free?"},
        )
    )
    assert (appended["seq"], appended["role"]) == (2, "user")
    tool_calls = [{"id": "c1", "type": "function", "function": {"name": "cal", "arguments": "{}"}}]
    await client.call_tool(
        "append_message",
        {"conversation_id": conversation_id, "role": "assistant", "tool_calls": tool_calls},
    )

    messages = _payload(
        await client.call_tool("get_messages", {"conversation_id": conversation_id, "limit": 2})
    )["messages"]
    assert [m["seq"] for m in messages] == [2, 3]
    assert messages[1]["tool_calls"] == tool_calls

    context = _payload(await client.call_tool("get_context", {"conversation_id": conversation_id}))
    assert context["format"] == "openai"
    assert context["messages"][0] == {"role": "user", "content": "Hi, I need a plumber"}

    listed = _payload(await client.call_tool("list_conversations", {"channel": "api"}))
    assert [c["id"] for c in listed["conversations"]] == [conversation_id]

    missing = "019a0000-0000-7000-8000-000000000000"
    text = _error(await client.call_tool("get_messages", {"conversation_id": missing}))
    assert text.endswith("get_messages failed: 404 not_found: conversation not found")
    text = _error(
        await client.call_tool(
            "decide_suggestion", {"suggestion_id": missing, "decision": "reject"}
        )
    )
    assert "404" in text and "not available" not in text

    # Whether or not the server has these yet, the answer is a result or a readable error.
    for name, args in [
        ("search_messages", {"query": "plumber", "mode": "keyword"}),
        ("list_suggestions", {}),
        ("send_message", {"conversation_id": conversation_id, "content": "On our way"}),
    ]:
        result = await client.call_tool(name, args)
        if result.is_error:
            assert f"{name.removesuffix('_messages')} " in result.content[0].text, result
            assert "Traceback" not in result.content[0].text
        elif name == "search_messages":
            hits = _payload(result)["results"]
            assert hits and "plumber" in hits[0]["message"]["content"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_mcp_over_stdio_and_http_against_a_live_server(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    key = make_tenant(db).token
    with LiveServer(tmp_path, database_url=db_url, log_level="warning") as server:
        with Threadline(server.base, key) as tl:
            conv = tl.conversations.create(contact={"name": "Ada"})
            tl.messages.append(conv.id, role="user", content="Hi, I need a plumber")
        env = threadline_env(url=server.base, api_key=key)
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "threadline", "mcp"], env=env, cwd=str(tmp_path)
        )

        async def over_stdio() -> None:
            async with Client(params, read_timeout_seconds=30) as client:
                await _exercise(client, conv.id)

        anyio.run(over_stdio)

        port = free_port()
        with (tmp_path / "mcp-http.err").open("wb") as errors:
            http = subprocess.Popen(
                [sys.executable, "-m", "threadline", "mcp", "--transport=http", f"--port={port}"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                    break
                except httpx.TransportError:
                    assert http.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "mcp-http.err"
                    ).read_text()
                    time.sleep(0.1)

            async def over_http() -> None:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    listed = _payload(await client.call_tool("list_conversations", {}))
                    assert [c["id"] for c in listed["conversations"]] == [conv.id]

            anyio.run(over_http)
        finally:
            http.terminate()
            http.wait(timeout=20)


def test_tools_whose_endpoint_is_missing_say_so() -> None:
    """An older server answers 404 for the path itself: the tool says it is not available."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "not_found", "message": "Not Found", "details": None}}
        return httpx.Response(404, json=body)

    async def scenario() -> None:
        api = AsyncThreadline("http://old.test", "k", transport=httpx.MockTransport(handler))
        async with api, Client(create_server(api)) as client:
            result = await client.call_tool("search_messages", {"query": "x"})
            assert "search is not available: this Threadline server" in _error(result)
            result = await client.call_tool("list_suggestions", {})
            assert "list_suggestions is not available" in _error(result)

    anyio.run(scenario)


def test_mcp_needs_an_api_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "threadline", "mcp"],
        env=threadline_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "THREADLINE_API_KEY" in result.stderr
