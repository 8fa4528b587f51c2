"""OpenAI chat JSONL: one ``{"messages": [...]}`` per line (the fine-tuning and batch format).

Each line is a conversation; its legacy id is the line's ``id`` (or ``metadata.id``) when it
has one, else a hash of the line, so the same line imported twice is found again. Roles
``system``/``developer``, ``user``, ``assistant`` (with ``tool_calls``) and ``tool`` (with
``tool_call_id``) are kept with their names; content parts become text and attachments;
``tools`` and ``metadata`` of the line go to the conversation's metadata, a message's
``weight`` to its metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from threadline.importers import base
from threadline.importers.base import Bad, BadValue, Legacy
from threadline.importers.sources import lines_of


def _conversation(number: int, line: str, data: Any) -> Legacy:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise BadValue('expected {"messages": [...]}')
    meta: dict[str, Any] = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
    legacy_id = data.get("id") or meta.get("id")
    if legacy_id is None:
        legacy_id = hashlib.sha256(line.strip().encode()).hexdigest()[:20]
    legacy_id = str(legacy_id)
    items = []
    for i, m in enumerate(data["messages"]):
        if not isinstance(m, dict):
            raise BadValue(f"message {i} is not an object")
        role = base.role(m.get("role"))
        content, attachments = base.text(m.get("content"), f"message {i} content")
        calls = base.tool_calls_openai(m.get("tool_calls"))
        if content is None and calls is None and role != base.Role.ASSISTANT:
            raise BadValue(f"message {i} has no content")
        extra = {"weight": m["weight"]} if "weight" in m else None
        items.append(
            base.message(
                "openai",
                f"{legacy_id}:{i}",
                role,
                content,
                name=m.get("name") if isinstance(m.get("name"), str) else None,
                tool_calls=calls,
                tool_call_id=m.get("tool_call_id") or (m.get("name") if role == "tool" else None),
                attachments=attachments or None,
                metadata=extra,
            )
        )
    metadata: dict[str, Any] = {}
    if meta:
        metadata["source_metadata"] = meta
    if data.get("tools"):
        metadata["tools"] = data["tools"]
    return Legacy(legacy_id, f"line {number}", items, metadata=metadata)


class OpenAIImporter:
    name = "openai"

    def read(self, source: str) -> Iterator[Legacy | Bad]:
        for number, line in lines_of(source):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                yield Bad(f"line {number}", f"not JSON ({exc})")
                continue
            try:
                yield _conversation(number, line, data)
            except BadValue as exc:
                yield Bad(f"line {number}", str(exc))
