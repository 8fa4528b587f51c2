"""The one way messages get in.

The REST API, channel webhooks, importers and the agent loop all store messages through
``Ingest.append``, so every message meets the same rules, whoever sends it:

- limits: at most ``max_batch_messages`` per call; ``content``, ``content_html`` and
  ``prompt_used`` at most ``max_content_chars`` characters each; and every message as a
  whole (content, HTML, tool calls, attachments, channel data, metadata, prompt ...) at
  most ``max_message_bytes`` of JSON;
- idempotency: a replayed ``Idempotency-Key`` or ``external_message_id`` answers the
  original and stores nothing (``store/messages.py``, ``store/idempotency.py``);
- ordering, conversation status and its ``status_changed`` event, all in the append's
  transaction;
- the ``threadline_messages_stored`` metric, counted only for messages stored just now.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from threadline.domain.errors import InvalidInput, PayloadTooLarge
from threadline.metrics import Metrics
from threadline.settings import Settings
from threadline.store import messages
from threadline.store.database import Database
from threadline.store.messages import Appended, Extra

#: Text fields held to ``max_content_chars`` each.
TEXT_FIELDS = ("content", "content_html", "prompt_used")


class Ingest:
    """Stores messages under the limits of ``settings``."""

    def __init__(self, db: Database, settings: Settings, metrics: Metrics | None = None) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics

    def check_count(self, count: int) -> None:
        """Refuse a batch over the limit before anything else is done with it."""
        limit = self.settings.max_batch_messages
        if count > limit:
            raise InvalidInput(f"a batch holds at most {limit} messages", count=count, limit=limit)

    def check_sizes(self, items: Sequence[dict[str, Any]]) -> None:
        content_limit = self.settings.max_content_chars
        byte_limit = self.settings.max_message_bytes
        for i, item in enumerate(items):
            for field in TEXT_FIELDS:
                text = item.get(field)
                if text is not None and len(text) > content_limit:
                    raise PayloadTooLarge(
                        f"{field} is over the {content_limit}-character limit",
                        index=i,
                        field=field,
                        limit=content_limit,
                        length=len(text),
                    )
            size = len(json.dumps(item, default=str, ensure_ascii=False).encode())
            if size > byte_limit:
                raise PayloadTooLarge(
                    f"the message is over the {byte_limit}-byte limit "
                    "(every field counts: content, HTML, tool calls, attachments, "
                    "channel data, metadata ...)",
                    index=i,
                    limit=byte_limit,
                    size=size,
                )

    def append(
        self,
        tenant_id: uuid.UUID,
        conversation_id: uuid.UUID,
        items: Sequence[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        send: bool | Sequence[bool] = False,
        extra: Extra | None = None,
    ) -> Appended:
        """Store ``items`` at the end of a conversation, all or nothing (see
        ``store.messages.append`` for replays and ordering); with ``send`` (one flag, or one
        per item) the new messages are queued for delivery in the same transaction.

        ``extra(conn, new)``: rows that belong with the new messages (a voice call's
        function calls as action log rows), written in the append's transaction after the
        messages, so both are stored or neither; not called for a replay. It may run twice
        (group commit), so it only writes to ``conn``."""
        self.check_count(len(items))
        self.check_sizes(items)
        result = messages.append(
            self.db,
            tenant_id,
            conversation_id,
            items,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            send=send,
            extra=extra,
        )
        if result.created and self.metrics is not None:
            self.metrics.messages_stored.labels(result.channel.value).inc(result.stored)
        return result
