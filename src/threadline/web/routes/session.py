"""Sign in at ``/`` (fields ``email`` and ``password``) and sign out."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from threadline.web import auth
from threadline.web.templating import templates

router = APIRouter(include_in_schema=False)

#: One message for an unknown email and a wrong password alike.
WRONG = "That email and password do not match an account."


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never another host) may follow sign-in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/inbox"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/inbox"
    return target


def _form(
    request: Request,
    *,
    error: str | None = None,
    email: str = "",
    status: int = 200,
    next_url: str | None = None,
) -> Response:
    token, new = auth.presession_token(request)
    response = templates.TemplateResponse(
        request,
        "signin.html",
        {"csrf_token": token, "error": error, "email": email, "next": next_url or ""},
        status_code=status,
    )
    if new:
        response.set_cookie(
            auth.PRESESSION_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=auth.secure_cookies(request.app.state.settings),
            path="/",
        )
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, next: str | None = None) -> Response:
    if auth.optional_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _form(request, next_url=next)


@router.post("/", response_class=HTMLResponse, dependencies=[Depends(auth.check_presession_csrf)])
@router.post(
    "/signin", response_class=HTMLResponse, dependencies=[Depends(auth.check_presession_csrf)]
)
def sign_in(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    throttle: auth.Throttle = request.app.state.web_throttle
    client = request.client.host if request.client else "?"
    keys = (f"email:{email.strip().lower()}", f"ip:{client}")
    delay = throttle.delay(*keys)
    if delay:
        time.sleep(delay)  # a sync route: this waits in a worker thread, not the event loop
    user = auth.sign_in(request.app.state.db, email, password) if email and password else None
    if user is None:
        throttle.failed(*keys)
        return _form(request, error=WRONG, email=email, status=401, next_url=next)
    throttle.succeeded(*keys)
    response = RedirectResponse(_safe_next(next), status_code=303)
    auth.start_session(response, request.app.state.settings, user)
    return response


@router.post("/signout")
def sign_out(_: auth.Poster) -> Response:
    response = RedirectResponse("/", status_code=303)
    auth.end_session(response)
    return response
