from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from threadline.api.deps import Ctx, RequestContext
from threadline.api.schemas.common import INT32_MAX
from threadline.api.schemas.messages import MessageBatch, MessageCreate, MessageList, MessageRead
from threadline.api.v1.params import Cursor
from threadline.domain.errors import InvalidCursor, InvalidInput, PayloadTooLarge
from threadline.settings import Settings
from threadline.store import messages, pagination

router = APIRouter(prefix="/conversations/{conversation_id}/messages", tags=["messages"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retries with the same key answer the first result and store nothing.",
    ),
]
Seq = Annotated[int | None, Query(ge=0, le=INT32_MAX)]


def _json(body: MessageRead | MessageList, status: int) -> Response:
    """Serialise once, in pydantic's core: the hot message routes skip FastAPI's second
    validation of the return value (and the thread-pool hop it takes for sync routes)."""
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _check_sizes(items: list[MessageCreate], settings: Settings) -> None:
    limit = settings.max_content_chars
    for i, item in enumerate(items):
        for field in ("content", "content_html", "prompt_used"):
            value = getattr(item, field)
            if value is not None and len(value) > limit:
                raise PayloadTooLarge(
                    f"{field} is over the {limit}-character limit",
                    index=i,
                    field=field,
                    limit=limit,
                    length=len(value),
                )


def _store(
    ctx: RequestContext,
    conversation_id: uuid.UUID,
    items: list[MessageCreate],
    key: str | None,
    path: str,
) -> tuple[list[dict[str, Any]], int]:
    """Store the messages; answer them with 201, or 200 when nothing new was stored."""
    caller = ctx.caller()
    settings = ctx.settings
    if len(items) > settings.max_batch_messages:
        raise InvalidInput(
            f"a batch holds at most {settings.max_batch_messages} messages", count=len(items)
        )
    _check_sizes(items, settings)
    columns = [m.to_columns() for m in items]
    request_hash = (
        messages.request_fingerprint(
            [m.model_dump(mode="json", exclude_unset=True) for m in items], scope=f"POST {path}"
        )
        if key
        else None
    )
    result = messages.append(
        ctx.db,
        caller.tenant_id,
        conversation_id,
        columns,
        idempotency_key=key,
        request_hash=request_hash,
    )
    if not result.created:
        return result.messages, 200
    ctx.metrics.messages_stored.labels(result.channel.value).inc(result.stored)
    return result.messages, 201


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "A concurrent write conflicted with this one: retry"}
}
_REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": MessageRead, "description": "A replay: the original, nothing stored"},
    **_CONFLICT,
}
_BATCH_REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": MessageList, "description": "Every message was a replay: nothing stored"},
    **_CONFLICT,
}


@router.post("", status_code=201, response_model=MessageRead, responses=_REPLAY)
def append_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    ctx: Ctx,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append one message; it gets the conversation's next `seq`.

    A replay (same `Idempotency-Key`, or an `external_message_id` already stored for this
    inbox or conversation) answers 200 with the original and stores nothing. An
    `Idempotency-Key` reused with a different body answers 422.
    """
    path = f"/v1/conversations/{conversation_id}/messages"
    rows, status = _store(ctx, conversation_id, [body], idempotency_key, path)
    return _json(MessageRead.model_validate(rows[0]), status)


@router.post("/batch", status_code=201, response_model=MessageList, responses=_BATCH_REPLAY)
def append_batch(
    conversation_id: uuid.UUID,
    body: MessageBatch,
    ctx: Ctx,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append many messages at once, all or nothing (history import).

    New messages take seqs in `occurred_at` order; the answer lists them in request order.
    Messages whose `external_message_id` is already stored are answered, not stored again.
    """
    path = f"/v1/conversations/{conversation_id}/messages/batch"
    rows, status = _store(ctx, conversation_id, body.messages, idempotency_key, path)
    return _json(MessageList.model_validate({"data": rows}), status)


@router.get("", response_model=MessageList)
def list_messages(
    conversation_id: uuid.UUID,
    ctx: Ctx,
    after_seq: Seq = None,
    before_seq: Seq = None,
    latest: Annotated[
        bool, Query(description="The newest `limit` messages (below `before_seq`), in seq order.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> Response:
    """Messages in `seq` order. Page forward with `after_seq` (or `next_cursor`); with
    `latest=true`, page backward from the newest."""
    caller = ctx.caller()
    if cursor:
        direction, seq = pagination.decode(cursor, kinds=(str, int))
        if not 0 <= seq <= INT32_MAX:
            raise InvalidCursor("the cursor is not one this server issued")
        if direction == "after":
            after_seq, latest = seq, False
        elif direction == "before":
            before_seq, latest = seq, True
        else:
            raise InvalidCursor("the cursor is not one this server issued")
    rows, more = messages.list_range(
        ctx.db,
        caller.tenant_id,
        conversation_id,
        after_seq=after_seq,
        before_seq=before_seq,
        limit=limit,
        latest=latest,
    )
    next_cursor = None
    if more and rows:
        next_cursor = (
            pagination.encode("before", rows[0]["seq"])
            if latest
            else pagination.encode("after", rows[-1]["seq"])
        )
    return _json(MessageList.model_validate({"data": rows, "next_cursor": next_cursor}), 200)
