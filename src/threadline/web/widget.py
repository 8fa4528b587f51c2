"""Web chat: what the public widget endpoints do, apart from HTTP (``routes/widget.py``).

A visitor on a website talks to a ``webchat`` inbox (provider ``widget``):

- **session**: the first message opens one: a contact (the name and email the visitor gave,
  found by email like any channel's contact) and a conversation on the inbox. The visitor
  gets a token signed with ``THREADLINE_SECRET_KEY`` (itsdangerous) naming the inbox, the
  conversation and the contact; it is the only key to that conversation, and it opens
  nothing on any other inbox;
- **send**: stores the visitor's message through ``Ingest.append``, so the inbox's agent
  answers it like any channel's; a retried send with the same ``client_id`` stores nothing;
- **history** and **live**: the conversation's messages a visitor may see: their own and
  the replies sent to them (never system or tool messages, never drafts).

Which pages may use an inbox: its ``config.allowed_origins`` (``["https://example.com"]``,
``"*"`` for any); an inbox without the list serves no page. How much: a visitor sends at
most ``config.messages_per_minute`` messages a minute (default ``MESSAGES_PER_MINUTE``), an
address opens at most ``SESSIONS_PER_MINUTE`` sessions and sends at most
``IP_MESSAGES_PER_MINUTE`` messages a minute (per process).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from threadline.channels.addresses import email_address
from threadline.domain.enums import Channel, Direction, Role
from threadline.domain.errors import NotFound
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import conversations, inboxes, messages
from threadline.store.database import Database
from threadline.store.inboxes import Located

PROVIDER = "widget"
TOKEN_SALT = "threadline.widget.visitor"
TOKEN_MAX_AGE = 90 * 24 * 3600
MESSAGES_PER_MINUTE = 20
IP_MESSAGES_PER_MINUTE = 60
SESSIONS_PER_MINUTE = 10
HISTORY_LIMIT = 100
MAX_CHARS = 4_000
DEFAULT_NAME = "Website visitor"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Refused(Exception):
    """A widget request that gets no service: ``status`` and ``code`` as the edge answers."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Visitor:
    inbox_id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID | None


# --- tokens -----------------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=TOKEN_SALT)


def issue_token(settings: Settings, visitor: Visitor) -> str:
    payload = {
        "i": str(visitor.inbox_id),
        "c": str(visitor.conversation_id),
        "k": str(visitor.contact_id) if visitor.contact_id else None,
    }
    return str(_serializer(settings).dumps(payload))


def read_token(settings: Settings, token: str | None, inbox_id: uuid.UUID) -> Visitor:
    """The visitor a token names: 401 when it is missing, forged or expired; 403 when it
    belongs to another inbox."""
    if not token:
        raise Refused(401, "unauthenticated", "no visitor token: start a session first")
    try:
        data = _serializer(settings).loads(token, max_age=TOKEN_MAX_AGE)
        visitor = Visitor(
            uuid.UUID(data["i"]),
            uuid.UUID(data["c"]),
            uuid.UUID(data["k"]) if data.get("k") else None,
        )
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Refused(401, "unauthenticated", "the visitor token is not valid") from None
    if visitor.inbox_id != inbox_id:
        raise Refused(403, "forbidden", "the visitor token belongs to another inbox")
    return visitor


# --- inbox and origin -------------------------------------------------------------------------


def locate(db: Database, settings: Settings, inbox_id: uuid.UUID) -> Located:
    """The active web-chat inbox ``inbox_id`` (any tenant); 404 otherwise."""
    try:
        return inboxes.for_webhook(db, settings, PROVIDER, inbox_id)
    except NotFound:
        raise Refused(404, "not_found", "no web chat inbox with this id") from None


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def allowed_origins(config: Mapping[str, Any]) -> list[str]:
    raw = config.get("allowed_origins") or []
    if isinstance(raw, str):
        raw = [raw]
    return [normalize_origin(str(o)) for o in raw if str(o).strip()]


def check_origin(located: Located, origin: str | None) -> str:
    """The request's origin if the inbox lets that page use it; 403 otherwise."""
    allowed = allowed_origins(located.config.config)
    if origin and ("*" in allowed or normalize_origin(origin) in allowed):
        return origin
    raise Refused(403, "forbidden", "this page's origin may not use this inbox")


# --- rate limits ------------------------------------------------------------------------------


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key (a sliding window, in process)."""

    def __init__(self, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int) -> None:
        """Count one hit; 429 (with the seconds to wait) when the key is over its limit."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._sweep(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= limit:
                wait = int(hits[0] + self.window - now) + 1
                raise Refused(
                    429, "rate_limited", "too many requests: wait a moment", retry_after=wait
                )
            hits.append(now)

    def _sweep(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]


def messages_per_minute(located: Located) -> int:
    value = located.config.config.get("messages_per_minute")
    try:
        return max(1, int(value)) if value is not None else MESSAGES_PER_MINUTE
    except (TypeError, ValueError):
        return MESSAGES_PER_MINUTE


# --- what a visitor does ----------------------------------------------------------------------


def start(
    db: Database,
    settings: Settings,
    located: Located,
    *,
    name: str | None,
    email: str | None,
    origin: str,
    page: str | None,
) -> tuple[Visitor, str]:
    """Open a conversation for a new visitor; the visitor and their token."""
    contact: dict[str, Any] = {"name": (name or "").strip() or DEFAULT_NAME}
    if email and email.strip():
        address = email_address(email)
        if address is None or "<" in email or " " in address:
            raise Refused(422, "validation_error", "email: not an email address")
        contact["email"] = address
    widget_facts = {"origin": origin} | ({"page": page} if page else {})
    conv = conversations.create(
        db,
        located.tenant_id,
        {
            "contact": contact,
            "inbox_id": located.inbox_id,
            "channel": Channel.WEBCHAT,
            "metadata": {"widget": widget_facts},
        },
    )
    visitor = Visitor(located.inbox_id, conv.id, conv.contact_id)
    return visitor, issue_token(settings, visitor)


def send(
    ingest: Ingest,
    located: Located,
    visitor: Visitor,
    content: str,
    client_id: str | None,
) -> tuple[dict[str, Any], bool]:
    """Store the visitor's message; the message as the widget shows it, and whether it was
    stored just now (False: a retry of a message already stored)."""
    text = content.strip()
    if not text:
        raise Refused(422, "validation_error", "content: write something to send")
    if client_id is not None and not _CLIENT_ID.match(client_id):
        raise Refused(422, "validation_error", "client_id: letters, digits, - and _ only")
    item: dict[str, Any] = {
        "role": Role.USER,
        "direction": Direction.INBOUND,
        "sender_type": "contact",
        "content": text,
    }
    if client_id:
        # scoped to the conversation: one visitor can never replay another's message
        item["external_message_id"] = f"widget:{visitor.conversation_id}:{client_id}"
    appended = ingest.append(located.tenant_id, visitor.conversation_id, [item])
    return public(appended.messages[0]), appended.created


def visible(message: Mapping[str, Any]) -> bool:
    """Whether the visitor sees this message: theirs, or a reply sent to them."""
    role, direction = str(message["role"]), str(message["direction"])
    if not message.get("content"):
        return False
    if role == Role.USER.value:
        return direction == Direction.INBOUND.value
    return role == Role.ASSISTANT.value and direction == Direction.OUTBOUND.value


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def public(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as the widget gets it: no ids of people, prompts or metadata."""
    role = str(message["role"])
    sender = str(message.get("sender_type") or "")
    author = "visitor" if role == Role.USER.value else ("staff" if sender == "human" else "agent")
    return {
        "id": str(message["id"]),
        "seq": int(message["seq"]),
        "author": author,
        "content": message.get("content") or "",
        "created_at": _iso(message.get("occurred_at") or message.get("created_at")),
    }


def history(
    db: Database, tenant_id: uuid.UUID, visitor: Visitor, after_seq: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The visitor's messages (the newest ``HISTORY_LIMIT``, or those after ``after_seq``),
    and the conversation's last seq (where a live stream starts)."""
    try:
        rows, _ = messages.list_range(
            db,
            tenant_id,
            visitor.conversation_id,
            after_seq=after_seq,
            limit=HISTORY_LIMIT,
            latest=after_seq is None,
        )
    except NotFound:
        raise Refused(410, "gone", "this conversation no longer exists") from None
    last = rows[-1]["seq"] if rows else (after_seq or 0)
    return [public(m) for m in rows if visible(m)], int(last)
