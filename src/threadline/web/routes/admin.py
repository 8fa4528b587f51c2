"""Settings: inboxes with the webhook URLs to paste into each provider, agents, API keys and
users. Everyone signed in reads them; only an admin creates keys and users or revokes keys."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from threadline.domain.enums import UserRole
from threadline.domain.errors import ThreadlineError
from threadline.store import agents, inboxes, tenants
from threadline.store.models import User
from threadline.web import auth
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)


def _users(request: Request, tenant_id: uuid.UUID) -> list[User]:
    with request.app.state.db.read() as s:
        q = sa.select(User).where(User.tenant_id == tenant_id).order_by(User.created_at)
        return list(s.scalars(q))


def _page(request: Request, user: auth.WebUser, new_key: str | None = None) -> Response:
    db, settings = request.app.state.db, request.app.state.settings
    context = {
        "user": user,
        "page": "settings",
        "inboxes": inboxes.list_page(db, settings, user.tenant_id, limit=200).items,
        "agents": agents.list_all(db, user.tenant_id),
        "keys": tenants.list_api_keys(db, user.tenant_id),
        "users": _users(request, user.tenant_id),
        "roles": list(UserRole),
        "new_key": new_key,
        "flash": request.query_params.get("error"),
    }
    return templates.TemplateResponse(request, "settings.html", context)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: auth.Reader) -> Response:
    return _page(request, user)


def _back(error: str | None = None) -> Response:
    from urllib.parse import quote

    return RedirectResponse("/settings" + (f"?error={quote(error)}" if error else ""), 303)


@router.post("/settings/keys", response_class=HTMLResponse)
def create_key(
    request: Request, user: auth.Admin, name: Annotated[str, Form(min_length=1, max_length=200)]
) -> Response:
    _, token = tenants.create_api_key(request.app.state.db, user.tenant_id, name)
    return _page(request, user, new_key=token)  # the new key, shown only now


@router.post("/settings/keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: uuid.UUID, user: auth.Admin) -> Response:
    try:
        tenants.revoke_api_key(request.app.state.db, user.tenant_id, key_id)
    except ThreadlineError as exc:
        return _back(exc.message)
    return _back()


@router.post("/settings/users")
def create_user(
    request: Request,
    user: auth.Admin,
    email: Annotated[str, Form(min_length=3, max_length=320)],
    password: Annotated[str, Form(min_length=8, max_length=1024)],
    role: Annotated[UserRole, Form()] = UserRole.AGENT,
) -> Response:
    try:
        tenants.create_user(request.app.state.db, user.tenant_id, email, password, role)
    except ThreadlineError as exc:
        return _back(exc.message)
    return _back()
