"""Context benchmark: an agent's context for a long conversation, against reading raw rows and
against LangChain's and LangGraph's own way of loading the same history.

On a temporary SQLite file, ``THREADS`` conversations of 1,000 messages each, every one with
a rolling summary covering all but its newest 20 messages and an AI agent whose system prompt
is a template. Measured in-process, taking turns (``_common.compare``):

- Threadline: what ``GET /v1/conversations/{id}/context`` does below HTTP: the conversation's
  setting (``store.agents.setting``), its window (``agent.context.conversation_window``: the
  rendered prompt, the latest summary and the newest messages that fit ``MAX_TOKENS``, token
  counted with tiktoken) and the OpenAI format (``context.formats.render``);
- raw: its last 20 rows in plain SQL on the same database (``SELECT * ... ORDER BY seq DESC
  LIMIT 20`` through pysqlite3), as dicts;
- LangChain: ``SQLChatMessageHistory(...).messages`` (it loads the whole history) sliced to the
  last 20;
- LangGraph: ``SqliteSaver.get_tuple`` of a checkpoint holding the 1,000 messages, sliced.

Every system is checked to answer with the same 20 messages first. Target: Threadline's p50
within 2x of the raw read.

    python bench/context.py            # about a minute
    python bench/context.py --quick    # fewer samples

Prints a Rich table and writes JSON to bench/results/context.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3 as stdlib_sqlite3
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    Latency,
    Row,
    compare,
    console,
    cpu_reference,
    environment,
    fmt_ms,
    fsync_latency,
    message_texts,
    render,
    slower,
    write_json,
)

from threadline.agent.context import conversation_window
from threadline.context.formats import Format
from threadline.context.formats import render as render_format
from threadline.domain.enums import AgentKind
from threadline.store import agents, conversations, messages, migrate, summaries, tenants
from threadline.store.database import Database

try:  # the SQLite Threadline itself uses, so the raw read is like for like
    import pysqlite3.dbapi2 as sqlite
except ImportError:  # pragma: no cover
    import sqlite3 as sqlite

warnings.filterwarnings("ignore", message=".*langchain-community.*")

LENGTH = 1000
THREADS = 10
WINDOW = 20
MAX_TOKENS = 4000
MODEL = "gpt-4o-mini"
PROMPT = "You answer for {{ business_name }}. Greet {{ contact_first_name | default('there') }}."
SUMMARY = (
    "The customer, Ada, asked for a kitchen quote, sent photos of the old cabinets, agreed a "
    "visit on Monday morning and wants the estimate by email; the invoice is still open."
)
RAW_LAST = (
    "SELECT * FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq DESC LIMIT ?"
)
TARGET = 2.0
RESULTS = Path(__file__).resolve().parent / "results" / "context.json"
TEXTS = message_texts(997)


def thread_items(thread_no: int) -> list[dict[str, str]]:
    base = thread_no * 7919
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": TEXTS[(base + i) % len(TEXTS)]}
        for i in range(LENGTH)
    ]


def to_langchain(item: dict[str, str], *, with_id: bool = False) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage

    cls = HumanMessage if item["role"] == "user" else AIMessage
    return cls(content=item["content"], id=str(uuid.uuid4()) if with_id else None)


def langgraph_put(saver: Any, thread: str, history: list[Any]) -> None:
    """The state after the whole history, stored the way a graph checkpoint is."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=len(history)))
    checkpoint["channel_values"] = {"messages": history}
    checkpoint["channel_versions"] = {"messages": len(history)}
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    saver.put(config, checkpoint, {"source": "loop", "step": len(history)}, {"messages": 1})


def build(folder: Path) -> dict[str, Any]:
    """The Threadline database and the LangChain and LangGraph stores, same histories."""
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from langgraph.checkpoint.sqlite import SqliteSaver
    from sqlalchemy import create_engine

    started = time.perf_counter()
    db = Database.from_url(f"sqlite:///{folder / 'threadline.db'}")
    migrate.upgrade(db)
    tenants.bootstrap(db)
    tenant = tenants.get_tenant(db, "default").id
    agent = agents.create(
        db,
        tenant,
        {"name": "Front desk", "kind": AgentKind.AI, "model": MODEL, "system_prompt": PROMPT},
    )
    lc_engine = create_engine(f"sqlite:///{folder / 'langchain.db'}")
    lg_conn = stdlib_sqlite3.connect(folder / "langgraph.db", check_same_thread=False)
    lg_conn.execute("PRAGMA journal_mode=WAL")
    saver = SqliteSaver(lg_conn)
    saver.setup()
    ids: list[uuid.UUID] = []
    histories: dict[uuid.UUID, Any] = {}
    for thread_no in range(THREADS):
        conv = conversations.create(
            db,
            tenant,
            {"channel": "api", "contact": {"name": "Ada Lovelace"}, "assignee_id": agent.id},
        )
        items = thread_items(thread_no)
        messages.append(db, tenant, conv.id, items)
        summaries.add(
            db,
            tenant,
            conv.id,
            from_seq=1,
            to_seq=LENGTH - WINDOW,
            content=SUMMARY,
            model=MODEL,
            token_count=40,
        )
        histories[conv.id] = SQLChatMessageHistory(conv.id.hex, connection=lc_engine)
        histories[conv.id].add_messages([to_langchain(m) for m in items])
        langgraph_put(saver, conv.id.hex, [to_langchain(m, with_id=True) for m in items])
        ids.append(conv.id)
    console.log(
        f"built {THREADS} x {LENGTH:,}-message histories in each store "
        f"in {time.perf_counter() - started:.1f} s"
    )
    raw = sqlite.connect(str(folder / "threadline.db"), isolation_level=None)
    return {
        "db": db,
        "tenant": tenant,
        "ids": ids,
        "raw": raw,
        "langchain": histories,
        "langgraph": saver,
        "engine": lc_engine,
    }


def fetch_last(conn: Any, tenant: uuid.UUID, conversation: uuid.UUID) -> list[dict[str, Any]]:
    cur = conn.execute(RAW_LAST, (tenant.hex, conversation.hex, WINDOW))
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    rows.reverse()
    return rows


def systems_for(built: dict[str, Any]) -> dict[str, Callable[[uuid.UUID], Any]]:
    db, tenant = built["db"], built["tenant"]

    def threadline(conversation: uuid.UUID) -> dict[str, Any]:
        setting = agents.setting(db, tenant, conversation)
        window = conversation_window(db, tenant, setting, max_tokens=MAX_TOKENS, model=MODEL)
        return render_format(window, Format.OPENAI)

    def langgraph(conversation: uuid.UUID) -> list[Any]:
        state = built["langgraph"].get_tuple({"configurable": {"thread_id": conversation.hex}})
        return state.checkpoint["channel_values"]["messages"][-WINDOW:]  # type: ignore[no-any-return]

    return {
        "threadline": threadline,
        "raw": lambda c: fetch_last(built["raw"], tenant, c),
        "langchain": lambda c: built["langchain"][c].messages[-WINDOW:],
        "langgraph": langgraph,
    }


def contents(name: str, answer: Any) -> list[str]:
    if name == "threadline":
        assert answer["summary"] == SUMMARY and answer["truncated"] is True
        assert answer["messages"][0]["role"] == "system"
        assert answer["token_count"] <= MAX_TOKENS
        return [m["content"] for m in answer["messages"][1:] if m["content"] != SUMMARY][-WINDOW:]
    if name == "raw":
        return [m["content"] for m in answer]
    return [m.content for m in answer]


def check(systems: dict[str, Callable[[uuid.UUID], Any]], ids: Sequence[uuid.UUID]) -> None:
    for conversation in ids:
        expected = contents("raw", systems["raw"](conversation))
        assert len(expected) == WINDOW
        for name, fn in systems.items():
            got = contents(name, fn(conversation))
            assert got == expected, f"{name} answered other messages for {conversation}"


def machine_state(folder: Path) -> dict[str, Any]:
    return {
        "fsync_16k_p50_ms": fsync_latency(folder),
        "python_loop_1m_ms": cpu_reference(),
        "loadavg": os.getloadavg(),
    }


NOTES = (
    f"{THREADS} conversations of {LENGTH:,} messages, each with a summary of all but its newest "
    f"{WINDOW}; calls take turns over them in rounds. 'a / b / c' is p50 / p95 / p99.",
    f"Threadline = setting + window (prompt rendered, summary, newest messages within "
    f"{MAX_TOKENS:,} tokens counted with tiktoken o200k_base) + OpenAI format: the context "
    f"route without HTTP. It answers the prompt, the summary and the same {WINDOW} messages.",
    "raw = SELECT * of the last 20 rows on the same database (pysqlite3), dicts of untyped "
    "values, no prompt, no summary, no token counts.",
    "LangChain SQLChatMessageHistory.messages loads all 1,000 messages as BaseMessage objects "
    "(then sliced); LangGraph SqliteSaver.get_tuple loads and decodes the whole checkpoint.",
    "SQLite files in WAL mode; Threadline and raw on pysqlite3, LangChain and LangGraph on the "
    "stdlib sqlite3 they use.",
)
PACKAGES = (
    "threadline",
    "sqlalchemy",
    "pysqlite3-binary",
    "tiktoken",
    "langchain-community",
    "langchain-core",
    "langgraph",
    "langgraph-checkpoint-sqlite",
)


def rows_of(lat: dict[str, Latency]) -> list[Row]:
    tl = lat["threadline"]
    size = f"{LENGTH:,} msgs + summary"
    rows = [
        Row(
            measure="context vs raw last 20",
            size=size,
            threadline=tl.short(),
            baseline=f"raw SQL last 20 rows {lat['raw'].short()}",
            ratio=slower(tl.p50 / lat["raw"].p50),
            target=f"p50 within {TARGET:g}x of raw",
            met=tl.p50 <= TARGET * lat["raw"].p50,
            data={"threadline": vars(tl), "raw": vars(lat["raw"])},
        )
    ]
    for name, label in (
        ("langchain", "LangChain SQLChatMessageHistory.messages[-20:]"),
        ("langgraph", "LangGraph SqliteSaver.get_tuple, last 20"),
    ):
        rows.append(
            Row(
                measure=f"context vs {name}",
                size=size,
                threadline=tl.short(),
                baseline=f"{label} {lat[name].short()}",
                ratio=slower(tl.p50 / lat[name].p50),
                data={"threadline": vars(tl), name: vars(lat[name])},
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--calls", type=int, default=2000, help="calls per system")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    calls = 200 if args.quick else args.calls
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
        folder = Path(tmp)
        before = machine_state(folder)
        built = build(folder)
        systems = systems_for(built)
        check(systems, built["ids"])
        order = [rng.choice(built["ids"]) for _ in range(calls)]
        timings = compare(systems, order, rounds=10, budget_s=20 if args.quick else 60)
        lat = {name: Latency.of(t) for name, t in timings.items()}
        after = machine_state(folder)
        built["raw"].close()
        built["langgraph"].conn.close()
        built["engine"].dispose()
        built["db"].dispose()
    wall = time.perf_counter() - started
    rows = rows_of(lat)
    machine = (
        f"Machine, before / after the run: {os.cpu_count()} CPUs; fsync of 16 kB p50 "
        f"{before['fsync_16k_p50_ms']:.2f} / {after['fsync_16k_p50_ms']:.2f} ms; 1M-iteration "
        f"Python loop {before['python_loop_1m_ms']:.0f} / {after['python_loop_1m_ms']:.0f} ms; "
        f"load average {before['loadavg'][0]:.1f} / {after['loadavg'][0]:.1f}."
    )
    render(
        rows,
        title=f"Threadline context benchmark (wall time {wall:.0f} s)",
        notes=(*NOTES, machine),
    )
    console.print(
        "p50: "
        + ", ".join(f"{name} {fmt_ms(value.p50)} (n={value.n})" for name, value in lat.items())
    )
    write_json(
        args.out,
        {
            "benchmark": "context",
            "command": " ".join(["python", "bench/context.py", *(argv or sys.argv[1:])]),
            "finished_at": datetime.now(UTC).isoformat(),
            "wall_s": wall,
            "quick": args.quick,
            "notes": NOTES,
            "environment": environment(PACKAGES)
            | {"sqlite": sqlite.sqlite_version, "stdlib_sqlite": stdlib_sqlite3.sqlite_version},
            "machine": {"before": before, "after": after},
            "latency_ms": {name: vars(value) for name, value in lat.items()},
        },
        rows,
    )
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
