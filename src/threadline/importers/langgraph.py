"""LangGraph checkpoints (``SqliteSaver`` or ``PostgresSaver``): the latest checkpoint of each
thread, read through the saver's own API, one conversation per thread.

The source is a SQLite file (or ``sqlite:///`` URL) or a ``postgresql://`` URL. Threads come
from the savers' documented ``checkpoints`` table (``thread_id``, root namespace ``''``);
each thread's newest checkpoint is read with ``saver.get_tuple`` and its ``messages``
channel converted: LangChain messages with their ids (the legacy message ids; else the
thread and position), tool calls as OpenAI's, an AI message's ``model_name`` and token
usage as the model fields. Needs ``langgraph-checkpoint-sqlite`` or
``langgraph-checkpoint-postgres`` installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from threadline.domain.errors import InvalidInput
from threadline.importers import base
from threadline.importers.base import Bad, BadValue, Legacy
from threadline.importers.langchain_sql import from_langchain


@contextmanager
def _sqlite_saver(path: str) -> Iterator[Any]:
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:
        raise InvalidInput(
            "reading LangGraph SQLite checkpoints needs langgraph-checkpoint-sqlite"
        ) from None
    import sqlite3

    if not Path(path).is_file():
        raise InvalidInput(f"no such file: {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@contextmanager
def _postgres_saver(url: str) -> Iterator[Any]:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError:
        raise InvalidInput(
            "reading LangGraph PostgreSQL checkpoints needs langgraph-checkpoint-postgres"
        ) from None
    with PostgresSaver.from_conn_string(url) as saver:
        yield saver


def _open(source: str) -> tuple[AbstractContextManager[Any], sa.Engine]:
    if "://" not in source:
        return _sqlite_saver(source), base.engine_for(source)
    url = sa.make_url(source)
    if url.get_backend_name() == "sqlite":
        return _sqlite_saver(url.database or ""), base.engine_for(source)
    if url.get_backend_name() == "postgresql":
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return _postgres_saver(plain), base.engine_for(source)
    raise InvalidInput(f"LangGraph checkpoints are read from SQLite or PostgreSQL, not {source}")


def _item(thread: str, index: int, m: Any) -> dict[str, Any]:
    data = {
        "content": getattr(m, "content", None),
        "tool_calls": getattr(m, "tool_calls", None),
        "additional_kwargs": getattr(m, "additional_kwargs", None),
        "tool_call_id": getattr(m, "tool_call_id", None),
        "name": getattr(m, "name", None),
        "role": getattr(m, "role", None),
    }
    legacy_id = getattr(m, "id", None) or f"{thread}:{index}"
    extra: dict[str, Any] = {}
    meta = getattr(m, "response_metadata", None) or {}
    if isinstance(meta, dict) and isinstance(meta.get("model_name"), str):
        extra["model_used"] = meta["model_name"]
    usage = getattr(m, "usage_metadata", None)
    if isinstance(usage, dict) and usage:
        extra["token_usage"] = {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }
    return from_langchain("langgraph", str(legacy_id), getattr(m, "type", None), data, **extra)


class LangGraphImporter:
    name = "langgraph"

    def read(self, source: str) -> Iterator[Legacy | Bad]:
        opened, engine = _open(source)
        try:
            with engine.connect() as conn:
                threads = [
                    str(t)
                    for (t,) in conn.execute(
                        sa.text(
                            "SELECT DISTINCT thread_id FROM checkpoints "
                            "WHERE checkpoint_ns = '' ORDER BY thread_id"
                        )
                    )
                ]
        except sa.exc.DBAPIError:
            raise InvalidInput(f"{source} holds no LangGraph checkpoints table") from None
        finally:
            engine.dispose()
        with opened as saver:
            for thread in threads:
                where = f"thread {thread}"
                found = saver.get_tuple(
                    {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
                )
                if found is None:
                    continue
                values = found.checkpoint.get("channel_values") or {}
                messages = values.get("messages") or []
                if not isinstance(messages, list):
                    messages = [messages]
                if not messages:
                    continue  # a thread of a graph without a messages channel
                try:
                    items = [_item(thread, i, m) for i, m in enumerate(messages)]
                except BadValue as exc:
                    yield Bad(where, str(exc))
                    continue
                checkpoint_id = found.config["configurable"].get("checkpoint_id")
                yield Legacy(thread, where, items, metadata={"checkpoint_id": checkpoint_id})
