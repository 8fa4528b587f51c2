"""Importers, run on legacy databases built with the legacy schemas (LangChain and LangGraph
write their own), through the CLI as a user runs them and through ``importers.base.run``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import TenantKey
from threadline.cli import app as cli_app
from threadline.importers import FORMATS, base
from threadline.settings import Settings
from threadline.store import Database

CHATS = [
    {
        "id": "chat-1",
        "messages": [
            {"role": "system", "content": "You book visits."},
            {"role": "user", "content": "Can I come Tuesday?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "book", "arguments": '{"day": "Tuesday"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": "booked"},
            {"role": "assistant", "content": "You are booked for Tuesday.", "weight": 1},
        ],
    },
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
]


def _conversations(api: TestClient) -> list[dict[str, Any]]:
    return api.get("/v1/conversations", params={"limit": 200}).json()["data"]  # type: ignore[no-any-return]


def _messages(api: TestClient, conversation_id: str) -> list[dict[str, Any]]:
    return api.get(f"/v1/conversations/{conversation_id}/messages").json()["data"]  # type: ignore[no-any-return]


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.mark.parametrize("backend", ["sqlite"])
def test_openai_jsonl_through_the_cli(
    api: TestClient, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"THREADLINE_DATABASE_URL": db_url}
    source = _write_jsonl(tmp_path / "chats.jsonl", CHATS)

    def run(*args: str) -> Any:
        return runner.invoke(
            cli_app, ["import", "openai", str(source), "--tenant", tenant.slug, *args], env=env
        )

    dry = run("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.stdout and _conversations(api) == []

    r = run()
    assert r.exit_code == 0, r.output
    assert "messages imported" in r.stdout
    convs = _conversations(api)
    assert len(convs) == 2
    chat = next(c for c in convs if c["external_conversation_id"] == "openai:chat-1")
    assert chat["metadata"]["legacy"] == {"format": "openai", "id": "chat-1"}
    messages = _messages(api, chat["id"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2]["tool_calls"] == CHATS[0]["messages"][2]["tool_calls"]  # type: ignore[index]
    assert messages[3]["tool_call_id"] == "call_9"
    assert messages[4]["metadata"] == {
        "weight": 1,
        "legacy": {"format": "openai", "id": "chat-1:4"},
    }
    assert messages[1]["external_message_id"] == "openai:chat-1:1"
    context = api.get(f"/v1/conversations/{chat['id']}/context").json()
    assert context["messages"][2]["tool_calls"][0]["function"]["name"] == "book"

    again = run()  # nothing twice
    assert again.exit_code == 0, again.output
    assert len(_conversations(api)) == 2
    assert sum(c["message_count"] for c in _conversations(api)) == 6
    assert "6" in again.stdout  # messages already there


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_malformed_line_stops_the_import_or_is_skipped(
    api: TestClient, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"THREADLINE_DATABASE_URL": db_url}
    bad_role = {"messages": [{"role": "robot", "content": "x"}]}
    tool_without_id = {"messages": [{"role": "tool", "content": "x"}]}
    source = _write_jsonl(
        tmp_path / "bad.jsonl",
        [CHATS[0], "", "{oops", bad_role, tool_without_id, CHATS[1]],
    )
    args = ["import", "openai", str(source), "--tenant", tenant.slug]
    r = runner.invoke(cli_app, args, env=env)
    assert r.exit_code == 1
    assert "line 3: not JSON" in r.output and "nothing was imported" in r.output
    assert "Traceback" not in r.output
    assert _conversations(api) == []

    r = runner.invoke(cli_app, [*args, "--skip-bad"], env=env)
    assert r.exit_code == 0, r.output
    assert "skipped line 3" in r.output
    assert "skipped line 4: unknown role 'robot'" in r.output
    assert "skipped line 5: a tool message needs tool_call_id" in r.output
    assert len(_conversations(api)) == 2

    missing = runner.invoke(
        cli_app, ["import", "openai", str(tmp_path / "nope.jsonl"), "-t", tenant.slug], env=env
    )
    assert missing.exit_code == 1 and "no such file" in missing.output


def _settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, environment="test", embeddings="none")


def _run(db: Database, db_url: str, tenant: TenantKey, fmt: str, source: str, **kw: Any) -> Any:
    options = {k: kw.pop(k) for k in ("dry_run", "limit", "ids", "skip_bad") if k in kw}
    importer = FORMATS[fmt](**kw)
    return base.run(db, _settings(db_url), importer, source, tenant.tenant_id, **options)


def test_langchain_message_store(
    api: TestClient, db: Database, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    history_mod = pytest.importorskip("langchain_community.chat_message_histories")
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    legacy = f"sqlite:///{tmp_path / 'langchain.db'}"
    first = history_mod.SQLChatMessageHistory(session_id="s-1", connection=legacy)
    first.add_messages(
        [
            SystemMessage("Be brief."),
            HumanMessage("Weather in Paris?"),
            AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "t1"}]),
            ToolMessage("Sunny", tool_call_id="t1"),
            AIMessage("It is sunny."),
        ]
    )
    second = history_mod.SQLChatMessageHistory(session_id="s-2", connection=legacy)
    second.add_messages([HumanMessage("Hello"), AIMessage("Hi!")])

    done = _run(db, db_url, tenant, "langchain", legacy, ids=["s-1"])
    assert (done.conversations_created, done.messages_imported) == (1, 5)
    (conv,) = _conversations(api)
    assert conv["external_conversation_id"] == "langchain:s-1"
    messages = _messages(api, conv["id"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = messages[2]["tool_calls"][0]
    assert call["id"] == "t1" and call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert messages[3]["tool_call_id"] == "t1"
    assert messages[0]["metadata"]["legacy"]["format"] == "langchain"

    done = _run(db, db_url, tenant, "langchain", legacy)
    assert (done.conversations_created, done.conversations_found) == (1, 1)
    assert (done.messages_imported, done.messages_already_there) == (2, 5)


def test_langgraph_sqlite_saver(
    api: TestClient, db: Database, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    sqlite_saver = pytest.importorskip("langgraph.checkpoint.sqlite")
    from langchain_core.messages import AIMessage
    from langgraph.graph import START, MessagesState, StateGraph

    def reply(state: MessagesState) -> dict[str, Any]:
        last = state["messages"][-1].content
        return {
            "messages": [
                AIMessage(
                    f"echo: {last}",
                    response_metadata={"model_name": "echo-1"},
                    usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                )
            ]
        }

    path = tmp_path / "checkpoints.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    graph = StateGraph(MessagesState)
    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    app = graph.compile(checkpointer=sqlite_saver.SqliteSaver(conn))
    for thread, texts in (("t-a", ["one", "two"]), ("t-b", ["hello"])):
        for text in texts:
            app.invoke({"messages": [("user", text)]}, {"configurable": {"thread_id": thread}})
    conn.close()

    done = _run(db, db_url, tenant, "langgraph", str(path))
    assert (done.conversations_created, done.messages_imported) == (2, 6)
    convs = {c["external_conversation_id"]: c for c in _conversations(api)}
    messages = _messages(api, convs["langgraph:t-a"]["id"])
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "two"),
        ("assistant", "echo: two"),
    ]
    assert messages[1]["model_used"] == "echo-1"
    assert messages[1]["token_usage"]["completion_tokens"] == 2
    assert _run(db, db_url, tenant, "langgraph", str(path)).messages_imported == 0


def _leadbot_db(path: Path, rows: list[tuple[Any, ...]]) -> str:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, agent_session_id TEXT, lead_id TEXT, "
        "sender_type TEXT, content TEXT, message_metadata TEXT, created_at TIMESTAMP, "
        "lead_phone TEXT)"
    )
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_leadbot_messages_log(
    api: TestClient, db: Database, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    rows = [
        (
            1,
            "sess-1",
            "lead-7",
            "lead",
            "Need a plumber",
            '{"src": "yelp"}',
            "2024-05-01 10:00:00",
            "+14155550142",
        ),
        (2, "sess-1", "lead-7", "bot", "When suits you?", None, "2024-05-01 10:00:05", None),
        (3, "sess-2", "lead-8", "lead", "Quote please", "{}", "2024-05-02 09:00:00", None),
        (4, "sess-1", "lead-7", "human", "I can come at 3", None, "2024-05-01 10:05:00", None),
        (5, "sess-3", "lead-8", "lead", "Still there?", None, "2024-05-09 09:00:00", None),
    ]
    source = _leadbot_db(tmp_path / "leadbot.db", rows)
    done = _run(db, db_url, tenant, "leadbot", source)
    assert (done.conversations_created, done.messages_imported) == (3, 5)
    convs = {c["external_conversation_id"]: c for c in _conversations(api)}
    first = convs["leadbot:sess-1:lead-7"]
    assert first["metadata"]["agent_session_id"] == "sess-1"
    messages = _messages(api, first["id"])
    assert [(m["role"], m["sender_type"], m["direction"]) for m in messages] == [
        ("user", "contact", "inbound"),
        ("assistant", "agent", "outbound"),
        ("assistant", "human", "outbound"),
    ]
    assert messages[0]["occurred_at"].startswith("2024-05-01T10:00:00")
    assert messages[0]["metadata"] == {"src": "yelp", "legacy": {"format": "leadbot", "id": "1"}}
    contact = api.get(f"/v1/contacts/{first['contact_id']}").json()
    assert contact["phone"] == "+14155550142"
    # one lead, one contact, across sessions
    assert (
        convs["leadbot:sess-2:lead-8"]["contact_id"] == convs["leadbot:sess-3:lead-8"]["contact_id"]
    )

    bad = _leadbot_db(
        tmp_path / "bad.db",
        [
            rows[0],
            (2, "s", "l", "martian", "x", None, None, None),
            (3, "s", "l", "lead", "x", "[1", None, None),
        ],
    )
    with pytest.raises(base.ImportFailed, match="row 2: unknown sender_type 'martian'"):
        _run(db, db_url, tenant, "leadbot", bad)
    done = _run(db, db_url, tenant, "leadbot", bad, skip_bad=True)
    assert [(b.where, b.reason) for b in done.skipped] == [
        ("row 2", "unknown sender_type 'martian'"),
        ("row 3", "message_metadata is not JSON"),
    ]
    assert done.messages_imported == 0 and done.messages_already_there == 1


def test_import_in_chunks_across_conversations(
    api: TestClient, db: Database, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    # chunks of 3 messages: a 5-message session spans two chunks, the short ones share one
    sessions = [("long", 5), ("a", 1), ("b", 2), ("c", 1)]
    rows, number = [], 0
    for session, length in sessions:
        for i in range(length):
            number += 1
            at = f"2024-05-01 10:00:{number:02d}"
            sender = "lead" if i % 2 == 0 else "bot"
            rows.append(
                (number, session, f"lead-{session}", sender, f"{session} {i}", None, at, None)
            )
    source = _leadbot_db(tmp_path / "leadbot.db", rows)
    settings = _settings(db_url).model_copy(update={"max_batch_messages": 3})

    def run() -> base.Summary:
        return base.run(db, settings, FORMATS["leadbot"](), source, tenant.tenant_id)

    done = run()
    assert (done.conversations_created, done.messages_imported) == (4, 9)
    convs = {c["external_conversation_id"]: c for c in _conversations(api)}
    for session, length in sessions:
        conv = convs[f"leadbot:{session}:lead-{session}"]
        assert conv["message_count"] == length
        texts = [(m["seq"], m["content"]) for m in _messages(api, conv["id"])]
        assert texts == [(i + 1, f"{session} {i}") for i in range(length)]
    again = run()
    assert (again.conversations_created, again.conversations_found) == (0, 4)
    assert (again.messages_imported, again.messages_already_there) == (0, 9)
    assert len(_conversations(api)) == 4


def test_call_sessions(
    api: TestClient, db: Database, db_url: str, tenant: TenantKey, tmp_path: Path
) -> None:
    path = tmp_path / "calls.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE call_sessions (id INTEGER PRIMARY KEY, call_sid TEXT, caller_number TEXT, "
        "transcript TEXT, scores TEXT, events TEXT, started_at TEXT, ended_at TEXT, "
        "duration_seconds INTEGER, status TEXT)"
    )
    segments = [
        {"role": "agent", "text": "Thanks for calling."},
        {"role": "user", "text": "My boiler is broken."},
    ]
    conn.executemany(
        "INSERT INTO call_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                1,
                "CA1",
                "+14155550150",
                json.dumps(segments),
                '{"sentiment": 0.4, "lead_quality": 8}',
                '[{"type": "transfer", "at": 12}]',
                "2024-06-01T12:00:00Z",
                "2024-06-01T12:03:00Z",
                180,
                "completed",
            ),
            (
                2,
                "CA2",
                None,
                "Plain transcript text.",
                None,
                None,
                "2024-06-02T08:00:00Z",
                None,
                30,
                "missed",
            ),
        ],
    )
    conn.commit()
    conn.close()
    done = _run(db, db_url, tenant, "calls", str(path), limit=1)
    assert (done.conversations_created, done.messages_imported) == (1, 1)
    done = _run(db, db_url, tenant, "calls", str(path))
    assert (done.conversations_created, done.conversations_found) == (1, 1)
    convs = {c["external_conversation_id"]: c for c in _conversations(api)}
    call = convs["calls:1"]
    assert call["channel"] == "voice"
    assert call["metadata"]["scores"] == {"sentiment": 0.4, "lead_quality": 8}
    (message,) = _messages(api, call["id"])
    assert message["message_type"] == "transcript"
    assert message["content"] == "Agent: Thanks for calling.\nUser: My boiler is broken."
    assert message["channel_data"]["segments"] == segments
    assert message["channel_data"]["events"] == [{"type": "transfer", "at": 12}]
    assert message["channel_data"]["duration_seconds"] == 180
    assert message["external_message_id"] == "calls:1"
    assert api.get(f"/v1/contacts/{call['contact_id']}").json()["phone"] == "+14155550150"
    (plain,) = _messages(api, convs["calls:2"]["id"])
    assert plain["content"] == "Plain transcript text."
