"""Settings → Inboxes → New: a form per provider, and after saving the webhook URLs to paste
into the provider's console and the secrets Threadline generated, shown this once. Admins
only; credentials are password fields and never come back to the page."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from threadline.domain.enums import InboxMode
from threadline.domain.errors import ThreadlineError, UnknownProvider
from threadline.store import inboxes
from threadline.web import auth, providers, queries
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

#: The longest value any field of the form may hold.
MAX_VALUE = 4096
MODES = (
    (InboxMode.APPROVAL, "Approval: the agent drafts, a person approves"),
    (InboxMode.AUTO, "Auto: the agent's replies are sent at once"),
    (InboxMode.OFF, "Off: the agent stays out; people reply"),
)


def _admin_reader(user: auth.Reader) -> auth.WebUser:
    if not user.is_admin:
        raise auth.Forbidden("only an admin can change settings")
    return user


AdminReader = Annotated[auth.WebUser, Depends(_admin_reader)]


async def _posted(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


Posted = Annotated[dict[str, str], Depends(_posted)]


def _form_page(
    request: Request,
    user: auth.WebUser,
    provider: str | None,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    form = None
    if provider:
        try:
            form = providers.form_for(provider)
        except UnknownProvider as exc:
            error = exc.message
    _, agents = queries.choices(request.app.state.db, user.tenant_id)
    context = {
        "user": user,
        "page": "settings",
        "choices": providers.choices(),
        "form": form,
        "values": values or {},
        "error": error,
        "modes": MODES,
        "agents": [a for a in agents if a.kind == "ai"],
    }
    return templates.TemplateResponse(request, "inbox_new.html", context, status_code=status_code)


@router.get("/settings/inboxes/new", response_class=HTMLResponse)
def new_inbox(request: Request, user: AdminReader, provider: str | None = None) -> Response:
    return _form_page(request, user, provider)


@router.post("/settings/inboxes", response_class=HTMLResponse)
def create_inbox(request: Request, user: auth.Admin, posted: Posted) -> Response:
    # What the page may show again if the form comes back: never a credential.
    keep = {k: v for k, v in posted.items() if not k.startswith("cred_") and k != "csrf_token"}
    name = posted.get("provider", "")
    try:
        form = providers.form_for(name)
    except UnknownProvider as exc:
        return _form_page(request, user, None, error=exc.message, status_code=400)
    if any(len(v) > MAX_VALUE for v in posted.values()):
        return _form_page(
            request, user, name, values=keep, error="A field is too long.", status_code=400
        )
    mode, agent_id = posted.get("mode") or InboxMode.APPROVAL, posted.get("agent_id") or None
    try:
        agent = uuid.UUID(agent_id) if agent_id else None
    except ValueError:
        agent, mode = None, ""
    if mode not in InboxMode._value2member_map_:
        error = "Choose a mode and an agent from the lists."
        return _form_page(request, user, name, values=keep, error=error, status_code=400)
    fields: dict[str, Any] = providers.fields_from(form, posted) | {
        "provider": form.name,
        "name": posted.get("name", "").strip() or None,
        "address": posted.get("address", "").strip(),
        "mode": mode,
        "agent_id": agent,
    }
    db, settings = request.app.state.db, request.app.state.settings
    try:
        view = inboxes.create(db, settings, user.tenant_id, fields)
    except ThreadlineError as exc:
        return _form_page(request, user, name, values=keep, error=exc.message, status_code=400)
    generated = view.generated_credentials
    webhooks = dict(view.webhooks)
    if form.name == "postmark":  # Postmark sends the pair as basic auth in each URL
        webhooks = {
            hook: providers.with_basic_auth(
                url, generated.get("webhook_username"), generated.get("webhook_password")
            )
            for hook, url in webhooks.items()
        }
    context = {
        "user": user,
        "page": "settings",
        "inbox": view,
        "form": form,
        "webhooks": webhooks,
        "generated": generated,
        "script_tag": (
            f'<script src="{settings.public_url.rstrip("/")}/widget.js" '
            f'data-inbox="{view.id}" async></script>'
            if form.channel == "webchat"
            else None
        ),
        "label": providers.label,
    }
    return templates.TemplateResponse(request, "inbox_created.html", context)
