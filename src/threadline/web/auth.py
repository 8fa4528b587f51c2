"""Who is using the dashboard: signed session cookies, CSRF tokens, roles and sign-in throttling.

A session is a cookie signed with ``THREADLINE_SECRET_KEY`` (itsdangerous): the user's id,
their tenant, a CSRF token and a fingerprint of their password hash, so changing a password
signs every other session out. Every request reads the user again (one indexed query), so a
deactivated user is out at once.

Every form post carries the session's CSRF token (a hidden ``csrf_token`` field, or the
``X-CSRF-Token`` header for requests made by script); a post without it answers 403. Before
sign-in, the sign-in form's token is the same double-submit pair, held in a cookie of its own.

Roles: a viewer reads everything and changes nothing (403); an agent works conversations;
an admin also manages inboxes, agents, keys and users.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pwdlib import PasswordHash
from starlette.responses import Response

from threadline.domain.enums import UserRole
from threadline.settings import Settings
from threadline.store import Database, tenants
from threadline.store.models import Tenant, User

SESSION_COOKIE = "tl_session"
PRESESSION_COOKIE = "tl_csrf"
SESSION_MAX_AGE = 14 * 24 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

#: Failed sign-ins allowed per email and per address within ``FAILURE_WINDOW`` seconds
#: before each further try is slowed down.
FREE_FAILURES = 5
FAILURE_WINDOW = 15 * 60
MAX_DELAY = 5.0

_passwords = PasswordHash.recommended()


@functools.cache
def _dummy_hash() -> str:
    """Checked against when no user has the email, so an unknown email costs as much as a
    wrong password and the two cannot be told apart by timing. Made on first use: an Argon2
    hash takes a noticeable moment, which no import should pay."""
    return _passwords.hash(secrets.token_urlsafe(16))


class SignInRequired(Exception):
    """The request needs a signed-in user; pages redirect to the sign-in form."""


class Forbidden(Exception):
    """The user may not do this (a viewer's write, a missing CSRF token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class WebUser:
    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    email: str
    name: str | None
    role: UserRole
    csrf: str

    @property
    def can_write(self) -> bool:
        return self.role != UserRole.VIEWER

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    @property
    def display_name(self) -> str:
        return self.name or self.email


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=purpose)


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def secure_cookies(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def start_session(response: Response, settings: Settings, user: User) -> None:
    payload = {
        "u": str(user.id),
        "t": str(user.tenant_id),
        "c": secrets.token_urlsafe(24),
        "p": _fingerprint(user.password_hash),
    }
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(settings, "threadline.session").dumps(payload),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
        path="/",
    )
    response.delete_cookie(PRESESSION_COOKIE, path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


_USER = (
    sa.select(User.id, User.tenant_id, User.email, User.name, User.role, User.password_hash)
    .add_columns(Tenant.slug)
    .join(Tenant, Tenant.id == User.tenant_id)
    .where(User.id == sa.bindparam("u"), User.tenant_id == sa.bindparam("t"), User.is_active)
)


def read_session(db: Database, settings: Settings, cookie: str | None) -> WebUser | None:
    if not cookie:
        return None
    try:
        data = _serializer(settings, "threadline.session").loads(cookie, max_age=SESSION_MAX_AGE)
        user_id, tenant_id = uuid.UUID(data["u"]), uuid.UUID(data["t"])
        csrf, fingerprint = str(data["c"]), str(data["p"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    with db.connect() as conn:
        row = conn.execute(_USER, {"u": user_id, "t": tenant_id}).first()
    if row is None or not hmac.compare_digest(_fingerprint(row.password_hash), fingerprint):
        return None
    return WebUser(
        id=row.id,
        tenant_id=row.tenant_id,
        tenant_slug=row.slug,
        email=row.email,
        name=row.name,
        role=UserRole(row.role),
        csrf=csrf,
    )


# --- sign-in ---------------------------------------------------------------------------------


class Throttle:
    """Counts failed sign-ins per key (an email, a client address) in a sliding window; past
    ``FREE_FAILURES`` each further try waits longer (doubling, up to ``MAX_DELAY``)."""

    def __init__(self, free: int = FREE_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.free = free
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] < now - self.window:
            times.popleft()
        return times

    def delay(self, *keys: str) -> float:
        now = time.monotonic()
        with self._lock:
            over = max(len(self._recent(k, now)) for k in keys) - self.free
        return 0.0 if over < 0 else min(MAX_DELAY, 0.25 * 2**over)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # forget the quiet keys
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def sign_in(db: Database, email: str, password: str) -> User | None:
    """The active user with this email and password, in whichever tenant has them, or None.

    Emails are unique per tenant; the rare email known to several tenants signs in to the
    first (oldest) whose password matches.
    """
    address = email.strip().lower()
    with db.read() as s:
        tenant_ids = list(
            s.scalars(
                sa.select(User.tenant_id)
                .join(Tenant, Tenant.id == User.tenant_id)
                .where(User.email == address, User.is_active)
                .order_by(Tenant.created_at)
            )
        )
    if not tenant_ids:
        _passwords.verify(password, _dummy_hash())
        return None
    for tenant_id in tenant_ids:
        user = tenants.verify_user(db, tenant_id, address, password)
        if user is not None:
            return user
    return None


# --- CSRF ------------------------------------------------------------------------------------


def presession_token(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF token, and whether it is new (to be set as a cookie)."""
    token = request.cookies.get(PRESESSION_COOKIE)
    if token and 16 <= len(token) <= 64:
        return token, False
    return secrets.token_urlsafe(24), True


async def _posted_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_presession_csrf(request: Request) -> None:
    expected = request.cookies.get(PRESESSION_COOKIE, "")
    given = await _posted_token(request)
    if not expected or not hmac.compare_digest(expected, given):
        raise Forbidden("the form has expired: reload the page and try again")


# --- dependencies ----------------------------------------------------------------------------


def _app_parts(request: Request) -> tuple[Database, Settings]:
    return request.app.state.db, request.app.state.settings


def optional_user(request: Request) -> WebUser | None:
    cached: Any = getattr(request.state, "web_user", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    db, settings = _app_parts(request)
    user = read_session(db, settings, request.cookies.get(SESSION_COOKIE))
    request.state.web_user = user
    return user


def _signed_in(request: Request) -> WebUser:
    user = optional_user(request)
    if user is None:
        raise SignInRequired()
    return user


async def _checked_csrf(request: Request, user: WebUser) -> WebUser:
    given = await _posted_token(request)
    if not given or not hmac.compare_digest(user.csrf, given):
        raise Forbidden("the form has expired: reload the page and try again")
    return user


async def _poster(request: Request, user: Annotated[WebUser, Depends(_signed_in)]) -> WebUser:
    return await _checked_csrf(request, user)


async def _writer(request: Request, user: Annotated[WebUser, Depends(_signed_in)]) -> WebUser:
    await _checked_csrf(request, user)
    if not user.can_write:
        raise Forbidden("viewers can look but not change anything")
    return user


async def _admin(request: Request, user: Annotated[WebUser, Depends(_signed_in)]) -> WebUser:
    await _checked_csrf(request, user)
    if not user.is_admin:
        raise Forbidden("only an admin can change settings")
    return user


#: A signed-in user (pages); redirects to the sign-in form otherwise.
Reader = Annotated[WebUser, Depends(_signed_in)]
#: A signed-in user posting a form with a valid CSRF token (any role: sign out).
Poster = Annotated[WebUser, Depends(_poster)]
#: An admin or agent posting a form with a valid CSRF token.
Writer = Annotated[WebUser, Depends(_writer)]
#: An admin posting a form with a valid CSRF token.
Admin = Annotated[WebUser, Depends(_admin)]


def has_users(db: Database) -> bool:
    """Whether anyone at all can sign in to the dashboard."""
    with db.connect() as conn:
        return conn.execute(sa.select(User.id).where(User.is_active).limit(1)).first() is not None
