"""Messages: append one, append a batch, list by seq.

The append routes read their body themselves instead of letting FastAPI validate it on the
event loop: a 5 MB batch takes seconds to validate, and during that time nothing else (not
even ``/healthz``) would be answered. Each append makes one hop to the thread pool and there,
in this order, checks the API key (401), parses the JSON (400), checks the number of
messages (422), validates them (422) and stores them. A forged key never costs a parse.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from threadline.api.deps import Ctx, RequestContext
from threadline.api.v1.params import NoQueryParams
from threadline.domain.errors import InvalidCursor
from threadline.schemas.common import INT32_MAX, QueryParams
from threadline.schemas.messages import MessageBatch, MessageCreate, MessageList, MessageRead
from threadline.store import idempotency, messages, pagination

Model = TypeVar("Model", bound=BaseModel)
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


def _json(body: MessageRead | MessageList, status: int) -> Response:
    """Serialise once, in pydantic's core: the message routes skip FastAPI's second
    validation of the return value (and the thread-pool hop it takes)."""
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its own body: the model's JSON schema
    with its definitions inlined (the route takes a ``Request``, so FastAPI cannot see it)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


def _parse(body: bytes) -> Any:
    if not body.strip():
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required"}
        raise RequestValidationError([missing])
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        error = {"type": "json_invalid", "loc": ("body", 0), "msg": f"JSON decode error: {exc}"}
        raise RequestValidationError([error]) from None


def _validate(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [dict(e) | {"loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _store(
    ctx: RequestContext,
    conversation_id: uuid.UUID,
    items: list[MessageCreate],
    key: str | None,
    path: str,
) -> tuple[list[dict[str, Any]], int]:
    """Store the messages; answer them with 201, or 200 when nothing new was stored."""
    caller = ctx.caller()
    request_hash = None
    if key:
        bodies = [m.model_dump(mode="json", exclude_unset=True) for m in items]
        request_hash = idempotency.fingerprint(bodies, scope=f"POST {path}")
    result = ctx.ingest.append(
        caller.tenant_id,
        conversation_id,
        [m.to_columns() for m in items],
        idempotency_key=key,
        request_hash=request_hash,
        send=[m.send for m in items],
    )
    return result.messages, 201 if result.created else 200


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "A concurrent write conflicted with this one: retry"}
}


def _append_one(
    ctx: RequestContext, conversation_id: uuid.UUID, body: bytes, key: str | None
) -> Response:
    ctx.caller()
    message = _validate(MessageCreate, _parse(body))
    path = f"/v1/conversations/{conversation_id}/messages"
    rows, status = _store(ctx, conversation_id, [message], key, path)
    return _json(MessageRead.model_validate(rows[0]), status)


@router.post(
    "",
    status_code=201,
    response_model=MessageRead,
    responses={
        200: {"model": MessageRead, "description": "A replay: the original, nothing stored"},
        **_CONFLICT,
    },
    openapi_extra=_request_body(MessageCreate),
)
async def append_message(
    conversation_id: uuid.UUID,
    request: Request,
    ctx: Ctx,
    _: NoQueryParams,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append one message; it gets the conversation's next `seq`.

    A replay (same `Idempotency-Key`, or an `external_message_id` already stored for this
    inbox or conversation) answers 200 with the original and stores nothing. An
    `Idempotency-Key` reused with a different body answers 422.
    """
    body = await request.body()
    return await run_in_threadpool(_append_one, ctx, conversation_id, body, idempotency_key)


def _append_batch(
    ctx: RequestContext, conversation_id: uuid.UUID, body: bytes, key: str | None
) -> Response:
    ctx.caller()
    data = _parse(body)
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        ctx.ingest.check_count(len(data["messages"]))
    batch = _validate(MessageBatch, data)
    path = f"/v1/conversations/{conversation_id}/messages/batch"
    rows, status = _store(ctx, conversation_id, batch.messages, key, path)
    return _json(MessageList.model_validate({"data": rows}), status)


@router.post(
    "/batch",
    status_code=201,
    response_model=MessageList,
    responses={
        200: {"model": MessageList, "description": "Every message was a replay: nothing stored"},
        **_CONFLICT,
    },
    openapi_extra=_request_body(MessageBatch),
)
async def append_batch(
    conversation_id: uuid.UUID,
    request: Request,
    ctx: Ctx,
    _: NoQueryParams,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append many messages at once, all or nothing (history import).

    New messages take seqs in `occurred_at` order; the answer lists them in request order.
    Messages whose `external_message_id` is already stored are answered, not stored again.
    """
    body = await request.body()
    return await run_in_threadpool(_append_batch, ctx, conversation_id, body, idempotency_key)


class MessagePage(QueryParams):
    """Which messages to list; unknown parameters are an error."""

    after_seq: int | None = Field(None, ge=0, le=INT32_MAX)
    before_seq: int | None = Field(None, ge=0, le=INT32_MAX)
    latest: bool = Field(
        False, description="The newest `limit` messages (below `before_seq`), in seq order."
    )
    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(
        None, max_length=512, description="The `next_cursor` of the previous page."
    )


@router.get("", response_model=MessageList)
def list_messages(
    conversation_id: uuid.UUID,
    ctx: Ctx,
    page: Annotated[MessagePage, Query()],
) -> Response:
    """Messages in `seq` order. Page forward with `after_seq` (or `next_cursor`); with
    `latest=true`, page backward from the newest."""
    caller = ctx.caller()
    after_seq, before_seq, latest = page.after_seq, page.before_seq, page.latest
    if page.cursor:
        direction, seq = pagination.decode(page.cursor, kinds=(str, int))
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
        limit=page.limit,
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
