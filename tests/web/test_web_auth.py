"""Sign-in, sessions, CSRF and roles."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from threadline.domain.enums import UserRole
from threadline.store import Database, conversations, tenants
from threadline.web import auth

from .conftest import PASSWORD, Browser, csrf_of, sign_in


def test_sign_in_form_at_root_has_email_and_password(web_app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(web_app) as client:
        r = client.get("/")
    assert r.status_code == 200
    assert re.search(r'<input[^>]+name="email"', r.text)
    assert re.search(r'<input[^>]+name="password"[^>]+type="password"', r.text)


def test_pages_redirect_to_sign_in_and_back(web_app, make_user) -> None:  # type: ignore[no-untyped-def]
    email = make_user(UserRole.AGENT)
    with TestClient(web_app) as client:
        r = client.get("/inbox?status=escalated", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/?next=/inbox")
        token = csrf_of(client.get("/").text)
        r = client.post(
            "/",
            data={
                "email": email,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "/inbox?status=escalated",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/inbox?status=escalated"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")


def test_next_never_leaves_the_site(web_app, make_user) -> None:  # type: ignore[no-untyped-def]
    email = make_user(UserRole.AGENT)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        with TestClient(web_app) as client:
            token = csrf_of(client.get("/").text)
            r = client.post(
                "/",
                data={"email": email, "password": PASSWORD, "csrf_token": token, "next": target},
                follow_redirects=False,
            )
            assert r.headers["location"] == "/inbox"


def test_wrong_password_and_unknown_user_get_the_same_answer(web_app, make_user) -> None:  # type: ignore[no-untyped-def]
    email = make_user(UserRole.ADMIN)
    answers = []
    for address, password in ((email, "wrong"), ("nobody@example.com", "wrong")):
        with TestClient(web_app) as client:
            token = csrf_of(client.get("/").text)
            r = client.post("/", data={"email": address, "password": password, "csrf_token": token})
            assert "tl_session" not in r.headers.get("set-cookie", "")
            body = re.sub(r'value="[^"]*"', "", r.text)  # the echoed email and fresh token
            answers.append((r.status_code, body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401


def test_sign_in_without_the_csrf_token_is_refused(web_app, make_user) -> None:  # type: ignore[no-untyped-def]
    email = make_user(UserRole.ADMIN)
    with TestClient(web_app) as client:
        client.get("/")
        r = client.post("/", data={"email": email, "password": PASSWORD})
        assert r.status_code == 403
        assert "tl_session" not in r.headers.get("set-cookie", "")


def test_every_form_post_needs_the_csrf_token(admin: Browser, db: Database) -> None:
    conv = conversations.create(db, admin.tenant_id, {"contact": {"name": "Ada"}})
    for url, data in (
        (f"/c/{conv.id}/reply", {"content": "hi"}),
        (f"/c/{conv.id}/status", {"status": "archived"}),
        (f"/c/{conv.id}/escalate", {}),
        ("/demo", {}),
        ("/signout", {}),
    ):
        r = admin.client.post(url, data=data, follow_redirects=False)
        assert r.status_code == 403, url
        r = admin.client.post(url, data={**data, "csrf_token": "forged"}, follow_redirects=False)
        assert r.status_code == 403, url
    assert conversations.get(db, admin.tenant_id, conv.id).message_count == 0


def test_a_viewer_reads_but_cannot_change_anything(
    browser_as: Callable[[UserRole], Browser], db: Database
) -> None:
    viewer = browser_as(UserRole.VIEWER)
    conv = conversations.create(db, viewer.tenant_id, {"contact": {"name": "Ada"}})
    assert viewer.get(f"/c/{conv.id}").status_code == 200
    assert "reply-box" not in viewer.get(f"/c/{conv.id}").text
    for url, data in ((f"/c/{conv.id}/reply", {"content": "hi"}), ("/demo", {})):
        assert viewer.post(url, data, follow_redirects=False).status_code == 403
    assert conversations.get(db, viewer.tenant_id, conv.id).message_count == 0
    # Signing out is not a change: a viewer may.
    assert viewer.post("/signout", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session(admin: Browser) -> None:
    r = admin.post("/signout", follow_redirects=False)
    assert r.status_code == 303
    assert admin.get("/inbox", follow_redirects=False).status_code == 303


def test_a_tampered_or_foreign_cookie_is_no_session(web_app, admin: Browser) -> None:  # type: ignore[no-untyped-def]
    cookie = admin.client.cookies.get(auth.SESSION_COOKIE)
    assert cookie
    with TestClient(web_app) as other:
        forged = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
        other.cookies.set(auth.SESSION_COOKIE, forged)
        assert other.get("/inbox", follow_redirects=False).status_code == 303


def test_changing_the_password_signs_sessions_out(admin: Browser, db: Database) -> None:
    import sqlalchemy as sa
    from pwdlib import PasswordHash

    from threadline.store.models import User

    with db.write() as s:
        s.execute(
            sa.update(User)
            .where(User.tenant_id == admin.tenant_id)
            .values(password_hash=PasswordHash.recommended().hash("new password"))
        )
    assert admin.get("/inbox", follow_redirects=False).status_code == 303


def test_another_tenants_conversation_is_not_found(admin: Browser, db: Database) -> None:
    other = tenants.create_tenant(db, f"o-{uuid.uuid4().hex[:8]}")
    conv = conversations.create(db, other.id, {"contact": {"name": "Eve"}})
    assert admin.get(f"/c/{conv.id}").status_code == 404
    r = admin.post(f"/c/{conv.id}/reply", {"content": "hi"}, follow_redirects=False)
    assert r.status_code == 404
    assert conversations.get(db, other.id, conv.id).message_count == 0


def test_repeated_failures_slow_sign_in_down() -> None:
    throttle = auth.Throttle(free=3, window=60)
    keys = ("email:a@example.com", "ip:1.2.3.4")
    for _ in range(3):
        assert throttle.delay(*keys) == 0
        throttle.failed(*keys)
    first = throttle.delay(*keys)
    throttle.failed(*keys)
    assert 0 < first < throttle.delay(*keys) <= auth.MAX_DELAY
    # Another email from another address is not slowed by them.
    assert throttle.delay("email:b@example.com", "ip:5.6.7.8") == 0
    throttle.succeeded(*keys)
    assert throttle.delay(*keys) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sign_in_after_failures_is_slowed_by_the_server(web_app, make_user) -> None:  # type: ignore[no-untyped-def]
    import time

    email = make_user(UserRole.AGENT)
    web_app.state.web_throttle = auth.Throttle(free=1, window=60)
    with TestClient(web_app) as client:
        token = csrf_of(client.get("/").text)
        for _ in range(2):
            client.post("/", data={"email": email, "password": "x", "csrf_token": token})
        started = time.monotonic()
        client.post("/", data={"email": email, "password": "x", "csrf_token": token})
        assert time.monotonic() - started >= 0.4
    assert sign_in  # the helper is shared with the other tests
