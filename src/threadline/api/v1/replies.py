"""The agent at work on one conversation: reply (queued or streamed), score, the action
log and the sessions."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from threadline.agent import llm
from threadline.agent.sessions import sessions
from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.domain.enums import ConversationStatus
from threadline.domain.errors import Conflict
from threadline.jobs.reply import run_job
from threadline.schemas.agents import ActionList, ActionRead, SessionList, SessionRead
from threadline.store import agent_jobs, agent_log, agents

router = APIRouter(prefix="/conversations", tags=["agents"])

_DONE = object()


def _accepted(job: dict[str, Any]) -> JSONResponse:
    body = {"job_id": str(job["id"]), "status": job["status"]}
    return JSONResponse(body, status_code=202)


@router.post(
    "/{conversation_id}/reply",
    status_code=202,
    responses={
        202: {"description": "Queued: `{job_id, status}`"},
        409: {"description": "No model configured, or the conversation is escalated"},
    },
)
def reply(conversation_id: uuid.UUID, request: Request, ctx: Ctx, _: NoQueryParams) -> Any:
    """Have the agent reply now. Answers 202 and the loop runs as a job; with
    `Accept: text/event-stream` the reply streams as the model writes it: `delta` events
    (text), `tool_call` and `tool_result` events, then `message` (the stored reply) or
    `suggestion` (a draft, in approval mode), or `error`. A client that goes away mid-stream
    still gets the whole reply stored."""
    caller = ctx.caller()
    setting = agents.setting(ctx.db, caller.tenant_id, conversation_id)
    agent = setting.agent if (setting.agent or {}).get("kind") == "ai" else None
    llm.resolve(ctx.settings, agent)  # 409 model_not_configured before anything is queued
    status = setting.conversation["status"]
    if status in (ConversationStatus.ESCALATED, ConversationStatus.ARCHIVED):
        raise Conflict(
            f"the conversation is {status}: the agent does not reply there",
            status=str(status),
        )
    last_seq = int(setting.conversation["last_seq"])
    streaming = "text/event-stream" in request.headers.get("accept", "")
    job, ours = agent_jobs.request(
        ctx.db, caller.tenant_id, conversation_id, None, "reply", last_seq, running=streaming
    )
    if not streaming:
        return _accepted(job)
    if not ours:
        raise Conflict(
            "a reply to the conversation as it stands is already being made or was made",
            job_id=str(job["id"]),
            status=job["status"],
        )
    events: queue.Queue[Any] = queue.Queue()

    def emit(kind: str, data: dict[str, Any]) -> None:
        events.put((kind, data))

    def work() -> None:
        try:
            run_job(ctx.db, ctx.settings, ctx.ingest, job, stream=True, emit=emit)
        finally:
            events.put(_DONE)

    # The reply runs on its own thread, so a client that goes away does not stop it.
    threading.Thread(target=work, name=f"reply-{job['id']}", daemon=True).start()

    async def stream() -> AsyncIterator[dict[str, str]]:
        while True:
            item = await anyio.to_thread.run_sync(events.get)
            if item is _DONE:
                return
            kind, data = item
            yield {"event": kind, "data": json.dumps(jsonable_encoder(data))}

    return EventSourceResponse(stream(), ping=15)


@router.post(
    "/{conversation_id}/score",
    status_code=202,
    responses={409: {"description": "No model configured"}},
)
def score(conversation_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> JSONResponse:
    """Score the conversation (a job): `sentiment`, `satisfaction_score`, `outcome` and
    `summary` appear on it."""
    caller = ctx.caller()
    setting = agents.setting(ctx.db, caller.tenant_id, conversation_id)
    llm.resolve(ctx.settings, setting.agent)
    job, _ours = agent_jobs.request(
        ctx.db,
        caller.tenant_id,
        conversation_id,
        None,
        "score",
        int(setting.conversation["last_seq"]),
    )
    return _accepted(job)


@router.get("/{conversation_id}/actions", response_model=ActionList)
def list_actions(conversation_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> ActionList:
    """The agent's actions (tool calls) in the conversation, oldest first."""
    caller = ctx.caller()
    rows = agent_log.list_actions(ctx.db, caller.tenant_id, conversation_id)
    return ActionList(data=[ActionRead.model_validate(r) for r in rows])


@router.get("/{conversation_id}/sessions", response_model=SessionList)
def list_sessions(conversation_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> SessionList:
    """The conversation split where it was idle longer than THREADLINE_SESSION_GAP_HOURS."""
    caller = ctx.caller()
    gap = timedelta(hours=ctx.settings.session_gap_hours)
    found = sessions(ctx.db, caller.tenant_id, conversation_id, gap)
    return SessionList(data=[SessionRead.model_validate(s) for s in found])
