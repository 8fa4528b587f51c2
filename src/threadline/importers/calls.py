"""A voice agent's ``call_sessions`` table: one conversation per call (channel ``voice``)
holding one ``transcript`` message.

Columns used when present: ``id`` (the legacy id), ``call_sid``/``call_id``, the caller's
number (``caller_number``, ``from_number``, ``phone_number``, ``phone``) and name
(``caller_name``), ``transcript`` (text, or a JSON list of segments with
``role``/``speaker`` and ``text``/``content``), ``scores`` (JSON object), ``events`` (JSON
list), ``started_at``/``created_at``, ``ended_at``, ``duration_seconds``/``duration``,
``status``, ``summary``, ``recording_url``. The transcript is the message's content (one
``Speaker: text`` line per segment), the segments, events, duration and recording its
channel data; scores, status and summary go to the conversation's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from threadline.domain.enums import Channel, Direction, MessageType, Role, SenderType
from threadline.importers import base
from threadline.importers.base import Bad, BadValue, Legacy
from threadline.importers.leadbot import _first, _json_object


def _segments(value: Any) -> tuple[str, list[dict[str, Any]] | None]:
    if value is None:
        raise BadValue("no transcript")
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped.startswith("["):
            return value, None
        try:
            value = json.loads(stripped)
        except ValueError:
            raise BadValue("transcript looks like JSON but is not") from None
    if not isinstance(value, list):
        raise BadValue("transcript must be text or a list of segments")
    lines = []
    for i, seg in enumerate(value):
        if not isinstance(seg, dict):
            raise BadValue(f"transcript segment {i} is not an object")
        speaker = seg.get("role") or seg.get("speaker") or "unknown"
        said = seg.get("text") or seg.get("content") or seg.get("message") or ""
        lines.append(f"{str(speaker).capitalize()}: {said}")
    return "\n".join(lines), value


def _events(value: Any) -> list[Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadValue("events is not JSON") from None
    if not isinstance(value, list):
        raise BadValue("events must be a JSON list")
    return value


class CallsImporter:
    name = "calls"

    def __init__(self, table: str = "call_sessions") -> None:
        self.table = table

    def read(self, source: str) -> Iterator[Legacy | Bad]:
        engine = base.engine_for(source)
        try:
            for row in base.rows_of(engine, self.table, "id"):
                legacy_id = str(row["id"])
                where = f"row {legacy_id}"
                try:
                    content, segments = _segments(row.get("transcript"))
                    scores = _json_object(row.get("scores"), "scores")
                    events = _events(row.get("events"))
                    started = base.timestamp(_first(row, "started_at", "created_at"))
                    ended = base.timestamp(row.get("ended_at"))
                    duration = _first(row, "duration_seconds", "duration")
                    channel_data = {
                        k: v
                        for k, v in {
                            "segments": segments,
                            "events": events,
                            "duration_seconds": duration,
                            "ended_at": ended.isoformat() if ended else None,
                            "recording_url": row.get("recording_url"),
                            "call_sid": _first(row, "call_sid", "call_id"),
                        }.items()
                        if v is not None
                    }
                    item = base.message(
                        self.name,
                        legacy_id,
                        Role.USER,
                        content,
                        sender_type=SenderType.CONTACT,
                        direction=Direction.INBOUND,
                        message_type=MessageType.TRANSCRIPT,
                        occurred_at=started,
                        channel_data=channel_data,
                    )
                except BadValue as exc:
                    yield Bad(where, str(exc))
                    continue
                phone = _first(row, "caller_number", "from_number", "phone_number", "phone")
                metadata = {
                    k: v
                    for k, v in {
                        "scores": scores or None,
                        "status": row.get("status"),
                        "summary": row.get("summary"),
                    }.items()
                    if v is not None
                }
                yield Legacy(
                    legacy_id,
                    where,
                    [item],
                    channel=Channel.VOICE,
                    title=f"Call {legacy_id}",
                    contact={"name": row.get("caller_name"), "phone": phone},
                    metadata=metadata,
                )
        finally:
            engine.dispose()
