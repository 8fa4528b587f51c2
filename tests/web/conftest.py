"""Fixtures for the dashboard: an app without background loops, users of each role, and a
client signed in as one of them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.domain.enums import UserRole
from threadline.settings import Settings
from threadline.store import Database, tenants

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Browser:
    """A TestClient with the session's CSRF token at hand."""

    client: TestClient
    csrf: str
    tenant_id: uuid.UUID

    def get(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(url, **kw)  # type: ignore[arg-type]

    def post(self, url: str, data: dict[str, str] | None = None, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kw)  # type: ignore[arg-type]


def call_api(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    """A ``/v1`` call to a live server with an API key: its JSON answer, or the test fails
    on an error status."""
    r = httpx.request(
        method, base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert r.status_code < 300, r.text
    return r.json()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    token = csrf_of(client.get("/").text)
    r = client.post(
        "/",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/inbox").text)


@pytest.fixture
def web_app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, db, background=())


@pytest.fixture
def web_tenant(db: Database) -> uuid.UUID:
    return tenants.create_tenant(db, f"w-{uuid.uuid4().hex[:8]}").id


@pytest.fixture
def make_user(db: Database, web_tenant: uuid.UUID) -> Callable[[UserRole], str]:
    def make(role: UserRole) -> str:
        email = f"{role.value}-{uuid.uuid4().hex[:6]}@example.com"
        tenants.create_user(db, web_tenant, email, PASSWORD, role)
        return email

    return make


@pytest.fixture
def browser_as(
    web_app, make_user: Callable[[UserRole], str], web_tenant: uuid.UUID
) -> Iterator[Callable[[UserRole], Browser]]:  # type: ignore[no-untyped-def]
    clients: list[TestClient] = []

    def open_as(role: UserRole) -> Browser:
        client = TestClient(web_app, raise_server_exceptions=True)
        clients.append(client)
        csrf = sign_in(client, make_user(role))
        return Browser(client, csrf, web_tenant)

    yield open_as
    for c in clients:
        c.close()


@pytest.fixture
def admin(browser_as: Callable[[UserRole], Browser]) -> Browser:
    return browser_as(UserRole.ADMIN)
