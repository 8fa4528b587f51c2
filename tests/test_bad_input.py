"""Bad input gets a clear 4xx JSON error and changes nothing, on both backends.

Every case sends one kind of bad request through the real app and checks three things: the
status, the error body ``{"error": {"code", "message", "details"}}``, and that no table of the
real database gained or lost a row (rejected PATCHes are also read back unchanged).

Related cases share one test and one database (``each`` runs them all and reports every
failing case by name), which keeps the suite fast on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TenantKey, make_tenant
from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database, tenants
from threadline.store.models import Base

JSON = {"Content-Type": "application/json"}
MAX_CHARS = 50
MAX_BODY = 4096
ZERO = "00000000-0000-0000-0000-000000000000"


def counts(db: Database) -> dict[str, int]:
    """Rows in every table, all tenants."""
    with db.read() as s:
        return {
            t.name: s.scalar(sa.select(sa.func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error


def rejected(
    db: Database, send: Callable[[], httpx.Response], status: int, code: str | None = None
) -> httpx.Response:
    """Send a request; it must fail with ``status`` and leave every table as it was."""
    before = counts(db)
    r = send()
    assert_error(r, status, code)
    assert counts(db) == before, "a rejected request changed stored data"
    return r


def error_of(r: httpx.Response) -> dict[str, Any]:
    return r.json()["error"]  # type: ignore[no-any-return]


def each(cases: Iterable[tuple[str, Any]], check: Callable[[Any], None]) -> None:
    """Run ``check`` on every case and fail once, naming every case that failed."""
    failures = []
    for name, case in cases:
        try:
            check(case)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def cid(conversation: dict[str, Any]) -> str:
    return str(conversation["id"])


@pytest.fixture
def strict(db_url: str, db: Database, tenant: TenantKey) -> Iterator[TestClient]:
    """A client of an app with small limits: content of 50 characters, bodies of 4 KiB."""
    settings = Settings(
        database_url=db_url,
        environment="test",
        log_level="warning",
        max_content_chars=MAX_CHARS,
        max_body_bytes=MAX_BODY,
    )
    app = create_app(settings, db)
    with TestClient(app, headers=tenant.headers, raise_server_exceptions=False) as c:
        yield c


# --- unknown and other tenants' ids: 404 -------------------------------------------------

CONVERSATION_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/conversations/{id}", None),
    ("GET", "/v1/conversations/{id}?include=messages&include=events", None),
    ("PATCH", "/v1/conversations/{id}", {"status": "archived", "title": "x"}),
    ("GET", "/v1/conversations/{id}/events", None),
    ("GET", "/v1/conversations/{id}/messages", None),
    ("GET", "/v1/conversations/{id}/messages?latest=true", None),
    ("POST", "/v1/conversations/{id}/messages", {"role": "user", "content": "hi"}),
    ("POST", "/v1/conversations/{id}/messages/batch", {"messages": [{"role": "user"}]}),
]


@pytest.mark.parametrize("whose", ["unknown", "other tenant"])
def test_unknown_or_other_tenants_conversation_is_404(
    api: TestClient, db: Database, cid: str, whose: str
) -> None:
    if whose == "unknown":
        target = str(uuid.uuid4())
    else:
        other = make_tenant(db)
        with TestClient(api.app, headers=other.headers) as c:
            r = c.post("/v1/conversations", json={"contact": {"name": "Bo"}})
            assert r.status_code == 201, r.text
            target = r.json()["id"]

    def check(call: tuple[str, str, Any]) -> None:
        method, path, body = call
        send = lambda: api.request(method, path.format(id=target), json=body)  # noqa: E731
        error = error_of(rejected(db, send, 404, "not_found"))
        assert error["message"] == "conversation not found", error

    each(((f"{m} {p}", (m, p, b)) for m, p, b in CONVERSATION_CALLS), check)
    # The caller's own conversation is untouched.
    assert api.get(f"/v1/conversations/{cid}").json()["message_count"] == 0


def test_unknown_contact_is_404(api: TestClient, db: Database) -> None:
    url = f"/v1/contacts/{uuid.uuid4()}"
    calls = [("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)]
    each(
        ((m, (m, b)) for m, b in calls),
        lambda c: rejected(db, lambda: api.request(c[0], url, json=c[1]), 404, "not_found"),
    )
    body = {"contact_id": str(uuid.uuid4())}
    rejected(db, lambda: api.post("/v1/conversations", json=body), 404, "not_found")


# --- authentication: 401 -----------------------------------------------------------------

BAD_AUTHORIZATION: list[str | bytes | None] = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "tl_not-even-a-scheme",
    "Bearer not-a-threadline-key",
    "Bearer tl_unknown0000000000000000000000000000000000",
    "Bearer tl_" + "x" * 5000,
    b"Bearer tl_\xe9\xff",
    b"Bearer \xe9\xff",
]


def test_missing_or_bad_key_is_401(app: Any, db: Database, cid: str) -> None:
    calls = [
        ("GET", "/v1/conversations", None),
        ("GET", f"/v1/conversations/{cid}", None),
        ("POST", f"/v1/conversations/{cid}/messages", {"role": "user", "content": "hi"}),
        ("POST", "/v1/contacts", {"name": "Eve"}),
    ]
    with TestClient(app, raise_server_exceptions=False) as c:

        def check(authorization: str | bytes | None) -> None:
            headers = {} if authorization is None else {"Authorization": authorization}
            for method, url, body in calls:
                send = lambda: c.request(method, url, json=body, headers=headers)  # noqa: B023, E731
                r = rejected(db, send, 401, "unauthenticated")
                assert r.headers.get("www-authenticate") == "Bearer"

        each(((repr(a)[:40], a) for a in BAD_AUTHORIZATION), check)


def test_revoked_key_is_401(app: Any, db: Database, tenant: TenantKey, cid: str) -> None:
    key, token = tenants.create_api_key(db, tenant.tenant_id, "to revoke")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, headers=headers, raise_server_exceptions=False) as c:
        assert c.get("/v1/conversations").status_code == 200
        tenants.revoke_api_key(db, tenant.tenant_id, key.id)
        send = lambda: c.post(f"/v1/conversations/{cid}/messages", json={"role": "user"})  # noqa: E731
        rejected(db, send, 401, "unauthenticated")
        rejected(db, lambda: c.get(f"/v1/conversations/{cid}"), 401, "unauthenticated")


def test_auth_is_checked_before_the_body_and_query(app: Any, db: Database, cid: str) -> None:
    """A caller without a key learns nothing about what the API would accept."""
    with TestClient(app, raise_server_exceptions=False) as c:
        send = lambda: c.post(f"/v1/conversations/{cid}/messages", json={"role": "bogus"})  # noqa: E731
        rejected(db, send, 401)
        rejected(db, lambda: c.get("/v1/conversations?limit=0&stauts=x"), 401)


# --- message rules: 422 ------------------------------------------------------------------

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _call(**function: Any) -> list[dict[str, Any]]:
    return [{**CALL, "function": {"name": "f", **function}}]


BAD_MESSAGES: dict[str, dict[str, Any]] = {
    "unknown role": {"role": "robot", "content": "hi"},
    "role missing": {"content": "hi"},
    "role not a string": {"role": 1, "content": "hi"},
    "tool without tool_call_id": {"role": "tool", "content": "{}"},
    "tool with empty tool_call_id": {"role": "tool", "tool_call_id": "", "content": "{}"},
    "tool_call_id on a user message": {"role": "user", "tool_call_id": "call_1"},
    "tool_calls on a user message": {"role": "user", "tool_calls": [CALL]},
    "tool_calls an object": {"role": "assistant", "tool_calls": CALL},
    "tool_calls empty": {"role": "assistant", "tool_calls": []},
    "tool call without id": {
        "role": "assistant",
        "tool_calls": [{"type": "function", "function": CALL["function"]}],
    },
    "tool call of another type": {"role": "assistant", "tool_calls": [{**CALL, "type": "code"}]},
    "tool call without function": {
        "role": "assistant",
        "tool_calls": [{"id": "c", "type": "function"}],
    },
    "function without name": {
        "role": "assistant",
        "tool_calls": [{**CALL, "function": {"arguments": "{}"}}],
    },
    "function without arguments": {"role": "assistant", "tool_calls": [{**CALL, "function": {}}]},
    "arguments an object": {"role": "assistant", "tool_calls": _call(arguments={"day": "fri"})},
    "arguments a list": {"role": "assistant", "tool_calls": _call(arguments=["fri"])},
    "arguments not JSON": {"role": "assistant", "tool_calls": _call(arguments="{day: fri")},
    "arguments empty": {"role": "assistant", "tool_calls": _call(arguments="")},
    "arguments a number": {"role": "assistant", "tool_calls": _call(arguments=42)},
    "unknown field": {"role": "user", "content": "hi", "colour": "blue"},
    "unknown field in a tool call": {"role": "assistant", "tool_calls": [{**CALL, "extra": 1}]},
    "content not a string": {"role": "user", "content": {"text": "hi"}},
    "unknown direction": {"role": "user", "direction": "sideways"},
    "unknown sender_type": {"role": "user", "sender_type": "alien"},
    "unknown message_type": {"role": "user", "message_type": "hologram"},
    "unknown delivery_status": {"role": "assistant", "delivery_status": "lost"},
    "occurred_at without timezone": {"role": "user", "occurred_at": "2026-01-01T10:00:00"},
    "occurred_at in 1900": {"role": "user", "occurred_at": "1900-01-01T00:00:00Z"},
    "occurred_at in 2300": {"role": "user", "occurred_at": "2300-01-01T00:00:00Z"},
    "occurred_at not a date": {"role": "user", "occurred_at": "yesterday"},
    "response_time_ms over int32": {"role": "assistant", "response_time_ms": 2**31},
    "negative response_time_ms": {"role": "assistant", "response_time_ms": -1},
    "negative cost": {"role": "assistant", "cost_usd": -0.01},
    "is_flagged not a boolean": {"role": "user", "is_flagged": "maybe"},
    "parent_message_id not a UUID": {"role": "user", "parent_message_id": "msg-1"},
    "external_message_id empty": {"role": "user", "external_message_id": ""},
    "external_message_id too long": {"role": "user", "external_message_id": "x" * 256},
    "tool_call_id too long": {"role": "tool", "tool_call_id": "x" * 256},
    "name too long": {"role": "user", "name": "x" * 256},
    "thread_id too long": {"role": "user", "thread_id": "x" * 256},
    "model_used too long": {"role": "assistant", "model_used": "x" * 201},
    "metadata not an object": {"role": "user", "metadata": ["a"]},
    "attachments not a list of objects": {"role": "user", "attachments": ["a.png"]},
}


def test_bad_message_is_422(api: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages"

    def check(body: dict[str, Any]) -> None:
        error = error_of(rejected(db, lambda: api.post(url, json=body), 422))
        assert error["code"] in ("validation_error", "invalid_input"), error

    each(BAD_MESSAGES.items(), check)
    # The same rules hold inside a batch.
    batch = f"{url}/batch"
    each(
        BAD_MESSAGES.items(),
        lambda body: rejected(db, lambda: api.post(batch, json={"messages": [body]}), 422),
    )


def test_good_tool_messages_are_accepted(api: TestClient, cid: str) -> None:
    """The counterpart of the rules above: each shape they refuse has a valid neighbour."""
    url = f"/v1/conversations/{cid}/messages"
    for body in [
        {"role": "assistant", "tool_calls": _call(arguments='{"day": "fri"}')},
        {"role": "assistant", "tool_calls": _call(arguments="[]"), "content": None},
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
        {"role": "user", "occurred_at": "2199-12-31T23:59:59+00:00"},
        {"role": "assistant", "response_time_ms": 2**31 - 1, "cost_usd": 0},
    ]:
        r = api.post(url, json=body)
        assert r.status_code == 201, (body, r.text)


def test_validation_errors_say_where_and_do_not_echo_the_input(
    api: TestClient, db: Database, cid: str
) -> None:
    body = {"role": "user", "content": "my card is 4111 1111 1111 1111", "direction": "up"}
    send = lambda: api.post(f"/v1/conversations/{cid}/messages", json=body)  # noqa: E731
    error = error_of(rejected(db, send, 422, "validation_error"))
    assert error["message"].startswith("direction:"), error
    assert error["details"][0]["loc"] == ["body", "direction"]
    assert "4111" not in json.dumps(error)


def test_an_unknown_parent_message_is_422(api: TestClient, db: Database, cid: str) -> None:
    body = {"role": "user", "content": "hi", "parent_message_id": str(uuid.uuid4())}
    send = lambda: api.post(f"/v1/conversations/{cid}/messages", json=body)  # noqa: E731
    error = error_of(rejected(db, send, 422))
    assert "parent_message_id" in error["message"]


def test_a_reused_idempotency_key_with_another_body_is_422(
    api: TestClient, db: Database, cid: str
) -> None:
    url = f"/v1/conversations/{cid}/messages"
    key = {"Idempotency-Key": "k-1"}
    assert api.post(url, json={"role": "user", "content": "one"}, headers=key).status_code == 201
    send = lambda: api.post(url, json={"role": "user", "content": "two"}, headers=key)  # noqa: E731
    rejected(db, send, 422, "idempotency_key_reused")
    for key_value in ("", "k" * 256):
        send = lambda k=key_value: api.post(  # noqa: E731
            url, json={"role": "user", "content": "hi"}, headers={"Idempotency-Key": k}
        )
        rejected(db, send, 422, "validation_error")


# --- contacts and conversations: 422 -----------------------------------------------------

BAD_CONTACTS: dict[str, dict[str, Any]] = {
    "phone not a number": {"phone": "call me maybe"},
    "phone without country code": {"phone": "4155550100"},
    "phone impossible": {"phone": "+1555"},
    "phone too long": {"phone": "+1" + "5" * 40},
    "email without @": {"email": "ada.example.com"},
    "email too long": {"email": "a@" + "b" * 320 + ".com"},
    "name too long": {"name": "x" * 201},
    "attributes a list": {"attributes": [1, 2]},
    "unknown field": {"name": "Ada", "age": 36},
}

BAD_CONVERSATIONS: dict[str, dict[str, Any]] = {
    "contact_id not a UUID": {"contact_id": "ada"},
    "inbox_id not a UUID": {"inbox_id": "inbox-1"},
    "unknown channel": {"channel": "carrier-pigeon"},
    "title too long": {"title": "x" * 501},
    "external_conversation_id too long": {"external_conversation_id": "x" * 256},
    "unknown field": {"subject": "hi"},
    "unknown field in contact": {"contact": {"name": "Ada", "nickname": "A"}},
    "bad phone in contact": {"contact": {"phone": "not a phone"}},
    "metadata not an object": {"metadata": "x"},
}


def test_bad_contact_or_conversation_is_422(api: TestClient, db: Database) -> None:
    each(
        BAD_CONTACTS.items(),
        lambda body: rejected(db, lambda: api.post("/v1/contacts", json=body), 422),
    )
    each(
        BAD_CONVERSATIONS.items(),
        lambda body: rejected(db, lambda: api.post("/v1/conversations", json=body), 422),
    )


def test_bad_updates_are_422_and_change_nothing(
    api: TestClient, db: Database, conversation: dict[str, Any]
) -> None:
    for url, bodies in [
        (
            f"/v1/conversations/{conversation['id']}",
            [{"status": "sleeping"}, {"assignee_id": "bob"}, {"title": "x" * 501}, {"x": 1}],
        ),
        (
            f"/v1/contacts/{conversation['contact_id']}",
            [{"phone": "nope"}, {"email": "nope"}, {"name": "x" * 201}, {"x": 1}],
        ),
    ]:
        before = api.get(url).json()
        each(
            ((json.dumps(b), b) for b in bodies),
            lambda b, url=url: rejected(db, lambda: api.patch(url, json=b), 422),  # type: ignore[misc]
        )
        assert api.get(url).json() == before


# --- sizes: 413 --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["content", "content_html", "prompt_used"])
def test_text_over_the_limit_is_413(strict: TestClient, db: Database, cid: str, field: str) -> None:
    url = f"/v1/conversations/{cid}/messages"
    body = {"role": "assistant", field: "é" * (MAX_CHARS + 1)}
    error = error_of(rejected(db, lambda: strict.post(url, json=body), 413, "payload_too_large"))
    assert error["details"]["limit"] == MAX_CHARS
    assert error["details"]["field"] == field
    # The limit counts characters, not bytes: exactly the limit is accepted.
    at_limit = {"role": "assistant", field: "é" * MAX_CHARS}
    assert strict.post(url, json=at_limit).status_code == 201


def test_one_message_over_the_limit_rejects_the_batch(
    strict: TestClient, db: Database, cid: str
) -> None:
    messages = [{"role": "user", "content": "ok"}] * 2 + [{"role": "user", "content": "x" * 51}]
    send = lambda: strict.post(  # noqa: E731
        f"/v1/conversations/{cid}/messages/batch", json={"messages": messages}
    )
    error = error_of(rejected(db, send, 413, "payload_too_large"))
    assert error["details"]["index"] == 2


def test_body_over_the_limit_is_413(strict: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages/batch"
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 40}] * 100}).encode()
    assert len(body) > MAX_BODY  # each message is fine, the body is not
    rejected(db, lambda: strict.post(url, content=body, headers=JSON), 413, "payload_too_large")
    # Without Content-Length the guard counts the bytes as they arrive.
    chunks = [body[i : i + 500] for i in range(0, len(body), 500)]
    send = lambda: strict.post(url, content=iter(chunks), headers=JSON)  # noqa: E731
    rejected(db, send, 413, "payload_too_large")
    # Other writes are guarded too.
    contact = json.dumps({"name": "A", "attributes": {"notes": "x" * MAX_BODY}}).encode()
    send = lambda: strict.post("/v1/contacts", content=contact, headers=JSON)  # noqa: E731
    rejected(db, send, 413, "payload_too_large")


def test_a_batch_over_the_message_limit_is_422(
    db_url: str, db: Database, tenant: TenantKey, cid: str
) -> None:
    settings = Settings(
        database_url=db_url, environment="test", log_level="warning", max_batch_messages=3
    )
    with TestClient(create_app(settings, db), headers=tenant.headers) as c:
        url = f"/v1/conversations/{cid}/messages/batch"
        messages = [{"role": "user", "content": str(i)} for i in range(4)]
        rejected(db, lambda: c.post(url, json={"messages": messages}), 422)
        assert c.post(url, json={"messages": messages[:3]}).status_code == 201


# --- the body itself: 415 and 400 --------------------------------------------------------

NOT_JSON_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "json",
]


def test_a_body_that_is_not_json_is_415(api: TestClient, db: Database, cid: str) -> None:
    body = b'{"role": "user", "content": "hi", "name": "Ada"}'
    calls = [
        ("POST", "/v1/contacts"),
        ("POST", "/v1/conversations"),
        ("POST", f"/v1/conversations/{cid}/messages"),
        ("POST", f"/v1/conversations/{cid}/messages/batch"),
        ("PATCH", f"/v1/conversations/{cid}"),
    ]

    def check(case: tuple[str, str, str | None]) -> None:
        method, url, content_type = case
        headers = {} if content_type is None else {"Content-Type": content_type}
        send = lambda: api.request(method, url, content=body, headers=headers)  # noqa: E731
        rejected(db, send, 415, "unsupported_media_type")

    each(
        ((f"{m} {u} {t}", (m, u, t)) for m, u in calls for t in NOT_JSON_TYPES),
        check,
    )
    # JSON with parameters, or a +json type, is JSON.
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = api.patch(
            f"/v1/conversations/{cid}",
            content=b'{"title": "t"}',
            headers={"Content-Type": content_type},
        )
        assert r.status_code == 200, r.text


NOT_JSON = {
    "truncated": b'{"role": "user", "content": "hi"',
    "trailing comma": b'{"role": "user", "content": "hi",}',
    "single quotes": b"{'role': 'user'}",
    "invalid UTF-8": b'{"role": "user", "content": "\xff\xfe"}',
    "raw NUL byte": b'{"role": "user", "content": "a\x00b"}',
    "raw control character": b'{"role": "user", "content": "a\x07b"}',
    "half a BOM": b"\xef\xbb",
    "two objects": b'{"role": "user"}{"role": "user"}',
    "bare word": b"hello",
}


def test_malformed_json_is_400(api: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages"
    each(
        NOT_JSON.items(),
        lambda raw: rejected(db, lambda: api.post(url, content=raw, headers=JSON), 400),
    )
    send = lambda: api.post(url, content=b'{"role": ', headers=JSON)  # noqa: E731
    error = error_of(rejected(db, send, 400, "invalid_json"))
    assert "JSON" in error["message"]


NOT_AN_OBJECT = {
    "null": b"null",
    "array": b'[{"role": "user"}]',
    "string": b'"user"',
    "number": b"1",
    "empty": b"",
}


def test_json_that_is_not_an_object_is_422(api: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages"
    each(
        NOT_AN_OBJECT.items(),
        lambda raw: rejected(db, lambda: api.post(url, content=raw, headers=JSON), 422),
    )


# --- text no database can store: 422, never 5xx ------------------------------------------

UNSTORABLE = {
    "NUL in content": '{"role": "user", "content": "a\\u0000b"}',
    "NUL in a metadata key": '{"role": "user", "metadata": {"a\\u0000": 1}}',
    "NUL in a nested value": '{"role": "user", "channel_data": {"a": ["ok", "b\\u0000"]}}',
    "NUL in a tool argument": (
        '{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",'
        ' "function": {"name": "f", "arguments": "\\"\\u0000\\""}}]}'
    ),
    "NUL in external_message_id": '{"role": "user", "external_message_id": "a\\u0000"}',
    "lone high surrogate": '{"role": "user", "content": "\\ud800"}',
    "lone low surrogate in a key": '{"role": "user", "metadata": {"\\udfff": 1}}',
    "reversed surrogate pair": '{"role": "user", "content": "\\udc00\\ud800"}',
    "NaN in metadata": '{"role": "user", "metadata": {"score": NaN}}',
    "Infinity in metadata": '{"role": "user", "metadata": {"score": [Infinity]}}',
    "-Infinity as cost": '{"role": "assistant", "cost_usd": -Infinity}',
    "1e400 in token_usage": '{"role": "assistant", "token_usage": {"total": 1e400}}',
    "metadata nested 100 deep": '{"role": "user", "metadata": {"a": '
    + "[" * 100
    + "]" * 100
    + "}}",
}


def test_unstorable_message_text_is_422(api: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages"

    def check(raw: str) -> None:
        rejected(db, lambda: api.post(url, content=raw.encode(), headers=JSON), 422)
        # The conversation still reads back: nothing half-stored poisons it.
        assert api.get(url).status_code == 200
        batch = '{"messages": [' + raw + "]}"
        send = lambda: api.post(f"{url}/batch", content=batch.encode(), headers=JSON)  # noqa: E731
        rejected(db, send, 422)

    each(UNSTORABLE.items(), check)


def test_json_nested_64_deep_is_stored_and_reads_back(api: TestClient, cid: str) -> None:
    """The depth limit leaves room for any real metadata, and what is stored reads back."""
    url = f"/v1/conversations/{cid}/messages"
    nested: Any = "leaf"
    for _ in range(60):
        nested = {"n": nested}
    r = api.post(url, json={"role": "user", "metadata": nested})
    assert r.status_code == 201, r.text
    assert api.get(url).json()["data"][0]["metadata"] == nested


def test_unstorable_contact_or_conversation_text_is_422(api: TestClient, db: Database) -> None:
    cases = [
        ("/v1/contacts", '{"name": "A\\u0000da"}'),
        ("/v1/contacts", '{"attributes": {"plan": "\\ud83d"}}'),
        ("/v1/contacts", '{"attributes": {"x": NaN}}'),
        ("/v1/contacts", '{"attributes": {"x": 1e999}}'),
        ("/v1/conversations", '{"title": "hi\\u0000"}'),
        ("/v1/conversations", '{"contact": {"name": "\\udead"}}'),
        ("/v1/conversations", '{"metadata": {"a": {"b": Infinity}}}'),
        ("/v1/conversations", '{"metadata": ' + '{"a": ' * 70 + "1" + "}" * 70 + "}"),
    ]
    each(
        ((f"{p} {raw[:40]}", (p, raw)) for p, raw in cases),
        lambda c: rejected(db, lambda: api.post(c[0], content=c[1].encode(), headers=JSON), 422),
    )


def test_json_nested_deeper_than_the_parser_allows_is_400(
    api: TestClient, db: Database, cid: str
) -> None:
    raw = '{"role": "user", "metadata": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    send = lambda: api.post(  # noqa: E731
        f"/v1/conversations/{cid}/messages", content=raw.encode(), headers=JSON
    )
    rejected(db, send, 400)


def test_unstorable_query_text_is_4xx(api: TestClient, cid: str) -> None:
    queries = {
        "NUL in cursor": "cursor=a%00b",
        "NUL in status": "status=active%00",
        "surrogate in channel": "channel=%ED%A0%80",
        "NUL as an id": "contact_id=%00",
        "invalid UTF-8 in cursor": "cursor=%FF%FE",
        "NUL in limit": "limit=1%00",
    }

    def check(query: str) -> None:
        for path in ("/v1/conversations", "/v1/contacts", f"/v1/conversations/{cid}/messages"):
            r = api.get(f"{path}?{query}")
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
            assert_error(r, r.status_code)

    each(queries.items(), check)


# --- lists: cursors, limits, filters, unknown parameters ----------------------------------


def _cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


BAD_LIST_CURSORS = {
    "not base64": "%%%not-a-cursor%%%",
    "base64 of bytes that are not JSON": base64.urlsafe_b64encode(b"\xff\x00junk").decode(),
    "not a list": base64.urlsafe_b64encode(b'{"a": 1}').decode(),
    "too short": _cursor("2026-01-01T00:00:00+00:00"),
    "wrong types": _cursor(1, 2),
    "not a timestamp": _cursor("yesterday", ZERO),
    "not a UUID": _cursor("2026-01-01T00:00:00+00:00", "nope"),
    "a messages cursor": _cursor("after", 3),
}

#: Cursors that decode but hold a timestamp no column can compare with. The store's cursor
#: decoding lets them through to the query, which fails with a 500 on both backends.
UNUSABLE_TIMESTAMP_CURSORS = {
    "timestamp without timezone": _cursor("2026-01-01T00:00:00", ZERO),
    "timestamp past year 9999 in UTC": _cursor("9999-12-31T23:59:59-14:00", ZERO),
    "timestamp before year 1 in UTC": _cursor("0001-01-01T00:00:00+14:00", ZERO),
}


@pytest.mark.parametrize(
    "cursors", [BAD_LIST_CURSORS, UNUSABLE_TIMESTAMP_CURSORS], ids=["malformed", "unusable"]
)
def test_invalid_list_cursor_is_400(
    api: TestClient, conversation: dict[str, Any], cursors: dict[str, str]
) -> None:
    def check(cursor: str) -> None:
        for path in ("/v1/contacts", "/v1/conversations"):
            assert_error(api.get(path, params={"cursor": cursor}), 400, "invalid_cursor")

    each(cursors.items(), check)


BAD_MESSAGE_CURSORS = {
    "not base64": "%%%",
    "a list cursor": _cursor("2026-01-01T00:00:00+00:00", ZERO),
    "unknown direction": _cursor("sideways", 3),
    "seq a string": _cursor("after", "3"),
    "negative seq": _cursor("after", -1),
    "seq past int32": _cursor("after", 2**31),
    "seq past int64": _cursor("before", 10**20),
    "seq a float": _cursor("before", 1.5),
    "seq a boolean": _cursor("after", True),
}


def test_invalid_message_cursor_is_400(api: TestClient, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages"
    each(
        BAD_MESSAGE_CURSORS.items(),
        lambda cursor: assert_error(api.get(url, params={"cursor": cursor}), 400, "invalid_cursor"),
    )
    assert_error(api.get(url, params={"cursor": "a" * 513}), 422)


BAD_QUERIES = {
    "/v1/contacts": [
        "limit=0",
        "limit=-1",
        "limit=201",
        f"limit={10**30}",
        "limit=ten",
        "limit=1.5",
        "limit=",
        "cursor=" + "a" * 513,
    ],
    "/v1/conversations": [
        "limit=0",
        "limit=201",
        "limit=1e3",
        "status=sleeping",
        "channel=fax",
        "contact_id=ada",
        "inbox_id=1",
        f"assignee_id={ZERO}0",
    ],
    "/v1/conversations/{cid}/messages": [
        "limit=0",
        "limit=-5",
        "limit=501",
        f"limit={2**63}",
        "after_seq=-1",
        f"after_seq={2**31}",
        f"before_seq={10**20}",
        "after_seq=first",
        "latest=maybe",
    ],
    "/v1/conversations/{cid}": ["include=summary", "include="],
}


def test_bad_query_values_are_422(api: TestClient, cid: str) -> None:
    def check(url: str) -> None:
        error = assert_error(api.get(url), 422, "validation_error")
        name = url.split("?")[1].split("=")[0]
        assert error["message"].startswith(f"{name}"), error

    each(
        ((f"{p}?{q}", f"{p.format(cid=cid)}?{q}") for p, qs in BAD_QUERIES.items() for q in qs),
        check,
    )


UNKNOWN_PARAMETERS = [
    "/v1/conversations?stauts=active",
    "/v1/contacts?page=2",
    "/v1/contacts?limit=5&offset=10",
    "/v1/conversations/{cid}?include=messages&expand=events",
    "/v1/conversations/{cid}/messages?after=3",
    "/v1/conversations/{cid}/events?after=1",
]


def test_unknown_query_parameter_is_422(api: TestClient, db: Database, cid: str) -> None:
    """A misspelt filter must not silently return everything."""

    def check(url: str) -> None:
        error = assert_error(api.get(url.format(cid=cid)), 422, "invalid_input")
        assert error["details"]["parameters"], error

    each(((u, u) for u in UNKNOWN_PARAMETERS), check)
    send = lambda: api.post(  # noqa: E731
        f"/v1/conversations/{cid}/messages?dry_run=1", json={"role": "user", "content": "hi"}
    )
    rejected(db, send, 422, "invalid_input")


def test_every_v1_route_refuses_unknown_query_parameters(app, api: TestClient) -> None:  # type: ignore[no-untyped-def]
    """Each route reads its query through a model that forbids extras (routes without
    parameters take ``NoQueryParams``), so a route added later cannot forget it."""

    def check(route_method: tuple[str, str]) -> None:
        path, method = route_method
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path) + "?zz_unknown=1"
        r = api.request(method, url, json={})
        error = assert_error(r, 422, "invalid_input")
        assert error["details"]["parameters"] == ["zz_unknown"], error

    routes = [
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    ]
    assert len(routes) >= 12
    each(((f"{m} {p}", (p, m)) for p, m in routes), check)


def test_invalid_uuid_is_422(api: TestClient, db: Database) -> None:
    reads = [
        "/v1/conversations/not-a-uuid",
        "/v1/conversations/123",
        f"/v1/contacts/{ZERO}x",
        f"/v1/conversations/{ZERO[:-1]}/events",
        "/v1/conversations/" + "a" * 5000 + "/messages",
    ]
    each(((u[:60], u) for u in reads), lambda u: assert_error(api.get(u), 422, "validation_error"))
    writes = [
        ("PATCH", "/v1/conversations/nope", {"title": "x"}),
        ("POST", "/v1/conversations/nope/messages", {"role": "user", "content": "x"}),
        ("POST", "/v1/conversations/nope/messages/batch", {"messages": [{"role": "user"}]}),
        ("DELETE", "/v1/contacts/nope", None),
        ("PATCH", "/v1/contacts/nope", {"name": "x"}),
    ]

    def check(call: tuple[str, str, Any]) -> None:
        send = lambda: api.request(call[0], call[1], json=call[2])  # noqa: E731
        error = error_of(rejected(db, send, 422, "validation_error"))
        assert "UUID" in error["message"], error

    each(((f"{m} {u}", (m, u, b)) for m, u, b in writes), check)


def test_wrong_method_is_405_with_allow(api: TestClient, db: Database, cid: str) -> None:
    cases = {
        "PUT /v1/contacts": ("PUT", "/v1/contacts", {"GET", "POST"}),
        "DELETE /v1/conversations": ("DELETE", "/v1/conversations", {"GET", "POST"}),
        "PUT conversation": ("PUT", f"/v1/conversations/{cid}", {"GET", "PATCH"}),
        "DELETE messages": ("DELETE", f"/v1/conversations/{cid}/messages", {"GET", "POST"}),
        "GET batch": ("GET", f"/v1/conversations/{cid}/messages/batch", {"POST"}),
    }

    def check(case: tuple[str, str, set[str]]) -> None:
        method, url, allowed = case
        r = rejected(db, lambda: api.request(method, url, json={}), 405, "method_not_allowed")
        assert set(r.headers["allow"].split(", ")) == allowed, r.headers

    each(cases.items(), check)


# --- batches: all or nothing -------------------------------------------------------------

BAD_IN_A_BATCH: dict[str, dict[str, Any]] = {
    "unknown role": {"role": "robot", "content": "x"},
    "tool without tool_call_id": {"role": "tool", "content": "x"},
    "arguments not JSON": {"role": "assistant", "tool_calls": _call(arguments="{oops")},
    "NUL in content": {"role": "user", "content": "a\x00b"},
    "unknown field": {"role": "user", "content": "x", "priority": "high"},
    "unknown parent": {"role": "user", "content": "x", "parent_message_id": str(uuid.uuid4())},
}


def _names_message(error: dict[str, Any], index: int) -> bool:
    """Whether an error points at ``messages[index]`` (in its details or its message)."""
    details = error["details"]
    if isinstance(details, dict):
        return details.get("index") == index
    return any(d["loc"][:3] == ["body", "messages", index] for d in details) or (
        f"messages[{index}]" in error["message"]
    )


def test_one_bad_message_rejects_the_whole_batch(api: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages/batch"
    good = [
        {"role": "user", "content": f"ok {i}", "external_message_id": f"ok-{i}"} for i in range(4)
    ]

    def check(case: tuple[dict[str, Any], int]) -> None:
        bad, position = case
        messages = [*good[:position], bad, *good[position:]]
        error = error_of(rejected(db, lambda: api.post(url, json={"messages": messages}), 422))
        assert _names_message(error, position), error

    each(
        ((f"{name} at {i}", (bad, i)) for name, bad in BAD_IN_A_BATCH.items() for i in (0, 2, 4)),
        check,
    )
    # None of the good ones was stored: sent alone, all four are new.
    r = api.post(url, json={"messages": good})
    assert r.status_code == 201, r.text
    assert [m["seq"] for m in r.json()["data"]] == [1, 2, 3, 4]


MALFORMED_BATCHES: dict[str, Any] = {
    "empty": {"messages": []},
    "an object": {"messages": {}},
    "null": {"messages": None},
    "missing": {},
    "not objects": {"messages": [1]},
    "unknown field": {"messages": [{"role": "user"}], "extra": True},
    "duplicate external ids": {
        "messages": [
            {"role": "user", "external_message_id": "a"},
            {"role": "user", "external_message_id": "a"},
        ]
    },
}


def test_malformed_batch_is_422(api: TestClient, db: Database, cid: str) -> None:
    url = f"/v1/conversations/{cid}/messages/batch"
    each(
        MALFORMED_BATCHES.items(),
        lambda body: rejected(db, lambda: api.post(url, json=body), 422),
    )
