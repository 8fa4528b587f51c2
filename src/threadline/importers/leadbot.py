"""A lead-response bot's single-table log (``messages``: ``id``, ``agent_session_id``,
``lead_id``, ``sender_type``, ``content``, ``message_metadata``, ``created_at`` ...): one
conversation per (session, lead), messages in ``created_at`` order.

``sender_type`` says who wrote: ``lead``/``user``/``customer``/``contact`` (the person),
``bot``/``ai``/``assistant``/``agent`` (the AI), ``human``/``operator``/``staff`` (a person of
the business), ``system``. ``message_metadata`` is a JSON object (text or native JSON) kept
in the message's metadata. Optional columns are used when present: ``channel``,
``lead_name``, ``lead_phone``/``phone``, ``lead_email``/``email``. Each lead is one contact
(found again by its lead id, or by phone or email).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from threadline.domain.enums import Channel, Direction, Role, SenderType
from threadline.importers import base
from threadline.importers.base import Bad, BadValue, Legacy

_SENDERS = {
    **dict.fromkeys(("lead", "user", "customer", "contact"), (Role.USER, SenderType.CONTACT)),
    **dict.fromkeys(("bot", "ai", "assistant", "agent"), (Role.ASSISTANT, SenderType.AGENT)),
    **dict.fromkeys(("human", "operator", "staff"), (Role.ASSISTANT, SenderType.HUMAN)),
    "system": (Role.SYSTEM, SenderType.SYSTEM),
}


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadValue(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadValue(f"{what} is not a JSON object")
    return value


def _first(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


class LeadBotImporter:
    name = "leadbot"

    def __init__(self, table: str = "messages") -> None:
        self.table = table

    def read(self, source: str) -> Iterator[Legacy | Bad]:
        engine = base.engine_for(source)
        conversations: dict[str, Legacy] = {}
        try:
            for row in base.rows_of(engine, self.table, "id"):
                where = f"row {row.get('id')}"
                try:
                    sender = str(row.get("sender_type") or "").lower()
                    if sender not in _SENDERS:
                        raise BadValue(f"unknown sender_type {row.get('sender_type')!r}")
                    if row.get("agent_session_id") is None and row.get("lead_id") is None:
                        raise BadValue("neither agent_session_id nor lead_id")
                    role, sender_type = _SENDERS[sender]
                    inbound = sender_type == SenderType.CONTACT
                    item = base.message(
                        self.name,
                        str(row["id"]),
                        role,
                        row.get("content"),
                        sender_type=sender_type,
                        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                        occurred_at=base.timestamp(row.get("created_at")),
                        metadata=_json_object(row.get("message_metadata"), "message_metadata"),
                    )
                    channel = str(row.get("channel") or "api").lower()
                    if channel not in Channel._value2member_map_:
                        channel = "api"
                except BadValue as exc:
                    yield Bad(where, str(exc))
                    continue
                key = f"{row.get('agent_session_id')}:{row.get('lead_id')}"
                if key not in conversations:
                    lead = row.get("lead_id")
                    conversations[key] = Legacy(
                        key,
                        f"session {key}",
                        [],
                        channel=Channel(channel),
                        contact={
                            "name": _first(row, "lead_name", "name"),
                            "phone": _first(row, "lead_phone", "phone"),
                            "email": _first(row, "lead_email", "email"),
                            "attributes": {"lead_id": lead},
                        },
                        contact_key=f"{self.name}:lead:{lead}" if lead is not None else None,
                        metadata={
                            "agent_session_id": row.get("agent_session_id"),
                            "lead_id": lead,
                        },
                    )
                conversations[key].messages.append(item)
        finally:
            engine.dispose()
        yield from conversations.values()
