"""The inbox: every conversation across channels, newest activity first, with filters; its
rows are re-rendered on their own when something changes (live updates)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from threadline.domain.enums import Channel, ConversationStatus
from threadline.domain.errors import InvalidCursor
from threadline.web import auth, demo, queries
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

#: The status tabs above the list, in order.
TABS = (
    ("", "All"),
    ("needs_reply", "Needs reply"),
    ("escalated", "Escalated"),
    ("waiting", "Waiting"),
    ("active", "Active"),
    ("archived", "Archived"),
)


def _filters(
    status: str | None, channel: str | None, inbox: str | None, assignee: str | None
) -> queries.InboxFilters:
    """Filters from the query string; a value that is not one we know is ignored."""

    def _uuid(value: str | None) -> uuid.UUID | None:
        try:
            return uuid.UUID(value) if value else None
        except ValueError:
            return None

    return queries.InboxFilters(
        status=status if status in ConversationStatus._value2member_map_ else None,
        channel=channel if channel in Channel._value2member_map_ else None,
        inbox_id=_uuid(inbox),
        assignee_id=_uuid(assignee),
    )


Q = Annotated[str | None, Query(max_length=64)]


def _rows(
    request: Request, user: auth.WebUser, filters: queries.InboxFilters, cursor: str | None
) -> dict[str, object]:
    db = request.app.state.db
    try:
        rows, next_cursor = queries.inbox_rows(db, user.tenant_id, filters, cursor=cursor)
    except InvalidCursor:
        rows, next_cursor = queries.inbox_rows(db, user.tenant_id, filters)
    return {"rows": rows, "next_cursor": next_cursor, "filters": filters}


@router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    user: auth.Reader,
    status: Q = None,
    channel: Q = None,
    inbox: Q = None,
    assignee: Q = None,
) -> Response:
    db = request.app.state.db
    filters = _filters(status, channel, inbox, assignee)
    inboxes, agents = queries.choices(db, user.tenant_id)
    context = _rows(request, user, filters, None) | {
        "user": user,
        "tabs": TABS,
        "counts": queries.counts_by_status(db, user.tenant_id),
        "inboxes": inboxes,
        "agents": agents,
        "channels": list(Channel),
        "empty_tenant": not queries.has_conversations(db, user.tenant_id),
        "page": "inbox",
    }
    return templates.TemplateResponse(request, "inbox.html", context)


@router.get("/inbox/rows", response_class=HTMLResponse)
def inbox_rows(
    request: Request,
    user: auth.Reader,
    status: Q = None,
    channel: Q = None,
    inbox: Q = None,
    assignee: Q = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The list alone: what the live updates and "load more" swap in."""
    filters = _filters(status, channel, inbox, assignee)
    context = _rows(request, user, filters, cursor) | {"user": user, "append": bool(cursor)}
    return templates.TemplateResponse(request, "_inbox_rows.html", context)


@router.post("/demo")
def load_demo(request: Request, user: auth.Writer) -> Response:
    """Fill the tenant with the demo conversations (once; a second click changes nothing)."""
    demo.load(request.app.state.db, request.app.state.settings, user.tenant_id)
    return RedirectResponse("/inbox", status_code=303)
