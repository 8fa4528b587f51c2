"""One conversation: the thread as its channel shows it, the events timeline and action log,
the pending draft with approve / edit / reject, a reply box that sends through the channel,
and status, assignment, escalation and hand back."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from threadline.domain.enums import ConversationStatus, SuggestionStatus
from threadline.domain.errors import Conflict, InvalidInput, NotFound, ThreadlineError
from threadline.store import agent_log, conversations, messages, suggestions
from threadline.web import actions, auth, queries
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

THREAD_LIMIT = 200


def not_found(request: Request, user: auth.WebUser | None, what: str = "conversation") -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": "Not found", "message": f"There is no such {what}.", "user": user},
        status_code=404,
    )


def _thread(request: Request, user: auth.WebUser, conversation_id: uuid.UUID) -> dict[str, Any]:
    db = request.app.state.db
    header = queries.conversation_header(db, user.tenant_id, conversation_id)
    if header is None:
        raise NotFound("conversation not found")
    rows, more = messages.list_range(
        db, user.tenant_id, conversation_id, limit=THREAD_LIMIT, latest=True
    )
    # Tool results are shown under the call that asked for them.
    results = {m["tool_call_id"]: m for m in rows if m["role"] == "tool" and m["tool_call_id"]}
    pending = suggestions.list_for(
        db,
        user.tenant_id,
        conversation_id=conversation_id,
        status=SuggestionStatus.PENDING,
        limit=1,
    )
    return {
        "conv": header,
        "messages": rows,
        "older": more,
        "tool_results": results,
        "suggestion": pending[0] if pending else None,
        "user": user,
    }


def _parse(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@router.get("/c/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, conversation_id: str, user: auth.Reader) -> Response:
    cid = _parse(conversation_id)
    db = request.app.state.db
    try:
        if cid is None:
            raise NotFound("conversation not found")
        context = _thread(request, user, cid)
        events = conversations.events_page(db, user.tenant_id, cid, limit=200)
        actions_log = agent_log.list_actions(db, user.tenant_id, cid, limit=200)
    except NotFound:
        return not_found(request, user)
    _, agents = queries.choices(db, user.tenant_id)
    context |= {
        "events": events.items,
        "actions": actions_log,
        "agents": agents,
        "statuses": list(ConversationStatus),
        "page": "inbox",
        "flash": request.query_params.get("error"),
    }
    return templates.TemplateResponse(request, "conversation.html", context)


@router.get("/c/{conversation_id}/draft", response_class=HTMLResponse)
def draft(request: Request, conversation_id: uuid.UUID, user: auth.Reader) -> Response:
    """The pending draft alone (the page keeps one a person is editing)."""
    try:
        context = _thread(request, user, conversation_id)
    except NotFound:
        return not_found(request, user)
    return templates.TemplateResponse(request, "_draft.html", context)


@router.get("/c/{conversation_id}/thread", response_class=HTMLResponse)
def thread(request: Request, conversation_id: uuid.UUID, user: auth.Reader) -> Response:
    """The thread and draft alone: what live updates swap in."""
    try:
        context = _thread(request, user, conversation_id)
    except NotFound:
        return not_found(request, user)
    return templates.TemplateResponse(request, "_thread.html", context)


def _back(conversation_id: uuid.UUID, error: str | None = None) -> Response:
    url = f"/c/{conversation_id}"
    if error:
        from urllib.parse import quote

        url += f"?error={quote(error)}"
    return RedirectResponse(url, status_code=303)


def _act(request: Request, conversation_id: uuid.UUID, work: Any) -> Response:
    """Run ``work()``; a refusal (a closed WhatsApp window, a forbidden transition, a decided
    draft) comes back as a message on the page, not an error page."""
    try:
        work()
    except NotFound:
        return not_found(request, auth.optional_user(request))
    except (Conflict, InvalidInput) as exc:
        return _back(conversation_id, exc.message)
    except ThreadlineError as exc:
        return _back(conversation_id, exc.message)
    return _back(conversation_id)


Text = Annotated[str, Form(max_length=32_000)]


@router.post("/c/{conversation_id}/reply")
def reply(
    request: Request, conversation_id: uuid.UUID, user: auth.Writer, content: Text = ""
) -> Response:
    text = content.strip()
    if not text:
        return _back(conversation_id, "Write something to send.")
    ingest = request.app.state.ingest
    return _act(
        request,
        conversation_id,
        lambda: actions.reply(ingest, user.tenant_id, conversation_id, text, user.email),
    )


@router.post("/c/{conversation_id}/status")
def set_status(
    request: Request,
    conversation_id: uuid.UUID,
    user: auth.Writer,
    status: Annotated[str, Form(max_length=32)],
) -> Response:
    if status not in ConversationStatus._value2member_map_:
        return _back(conversation_id, "Unknown status.")
    ingest = request.app.state.ingest
    target = ConversationStatus(status)
    return _act(
        request,
        conversation_id,
        lambda: actions.set_status(ingest, user.tenant_id, conversation_id, target),
    )


@router.post("/c/{conversation_id}/escalate")
def escalate(request: Request, conversation_id: uuid.UUID, user: auth.Writer) -> Response:
    ingest = request.app.state.ingest
    return _act(
        request,
        conversation_id,
        lambda: actions.set_status(
            ingest, user.tenant_id, conversation_id, ConversationStatus.ESCALATED
        ),
    )


@router.post("/c/{conversation_id}/handback")
def hand_back(request: Request, conversation_id: uuid.UUID, user: auth.Writer) -> Response:
    ingest = request.app.state.ingest
    header = queries.conversation_header(request.app.state.db, user.tenant_id, conversation_id)
    if header is None:
        return not_found(request, user)
    agent_id = _inbox_agent(request, user, header.inbox_id)
    return _act(
        request,
        conversation_id,
        lambda: actions.hand_back(ingest, user.tenant_id, conversation_id, agent_id),
    )


def _inbox_agent(
    request: Request, user: auth.WebUser, inbox_id: uuid.UUID | None
) -> uuid.UUID | None:
    if inbox_id is None:
        return None
    from threadline.store.models import Inbox

    with request.app.state.db.read() as s:
        inbox = s.get(Inbox, inbox_id)
        return inbox.agent_id if inbox is not None and inbox.tenant_id == user.tenant_id else None


@router.post("/c/{conversation_id}/assign")
def assign(
    request: Request,
    conversation_id: uuid.UUID,
    user: auth.Writer,
    assignee: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    agent_id = _parse(assignee) if assignee else None
    if assignee and agent_id is None:
        return _back(conversation_id, "Unknown assignee.")
    ingest = request.app.state.ingest
    return _act(
        request,
        conversation_id,
        lambda: actions.assign(ingest, user.tenant_id, conversation_id, agent_id),
    )


@router.post("/suggestions/{suggestion_id}/approve")
def approve(
    request: Request,
    suggestion_id: uuid.UUID,
    user: auth.Writer,
    content: Annotated[str | None, Form(max_length=32_000)] = None,
) -> Response:
    ingest = request.app.state.ingest
    try:
        draft = suggestions.get(ingest.db, user.tenant_id, suggestion_id)
    except NotFound:
        return not_found(request, user, "draft")
    edited = content.strip() if content is not None and content.strip() else None
    return _act(
        request,
        draft.conversation_id,
        lambda: actions.approve(ingest, user.tenant_id, suggestion_id, edited),
    )


@router.post("/suggestions/{suggestion_id}/reject")
def reject(
    request: Request,
    suggestion_id: uuid.UUID,
    user: auth.Writer,
    feedback: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    ingest = request.app.state.ingest
    try:
        draft = suggestions.get(ingest.db, user.tenant_id, suggestion_id)
    except NotFound:
        return not_found(request, user, "draft")
    return _act(
        request,
        draft.conversation_id,
        lambda: actions.reject(ingest, user.tenant_id, suggestion_id, feedback.strip() or None),
    )
