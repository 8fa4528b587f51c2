"""Contacts over HTTP on both backends: CRUD, E.164 phones, unique addresses, pagination."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantKey, make_tenant
from threadline.store import Database


def _create(api: TestClient, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/contacts", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "details"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err  # type: ignore[no-any-return]


def test_create_then_get(api: TestClient) -> None:
    created = _create(
        api,
        name="Ada Lovelace",
        phone="+1 (415) 555-0100",
        email="Ada@Example.COM",
        attributes={"plan": "pro", "tags": ["vip"]},
    )
    uuid.UUID(created["id"])
    assert created["name"] == "Ada Lovelace"
    assert created["phone"] == "+14155550100"
    assert created["email"] == "ada@example.com"
    assert created["attributes"] == {"plan": "pro", "tags": ["vip"]}
    assert created["created_at"] and created["updated_at"]

    r = api.get(f"/v1/contacts/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created


def test_create_with_no_fields_is_allowed(api: TestClient) -> None:
    created = _create(api)
    assert created["phone"] is None and created["email"] is None
    assert created["attributes"] == {}


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+33 1 23 45 67 89", "+33123456789"),
        ("+1-415-555-0101", "+14155550101"),
        ("+4915123456789", "+4915123456789"),
    ],
)
def test_phone_is_normalised_to_e164(api: TestClient, written: str, e164: str) -> None:
    assert _create(api, phone=written)["phone"] == e164


@pytest.mark.parametrize("phone", ["4155550100", "not a phone", "+1 415", "+999 123 456 789"])
def test_invalid_phone_answers_422_and_stores_nothing(api: TestClient, phone: str) -> None:
    err = _error(api.post("/v1/contacts", json={"name": "X", "phone": phone}), 422)
    assert "phone" in err["message"]
    assert api.get("/v1/contacts").json()["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email"},
        {"name": "x" * 201},
        {"attributes": ["not", "an", "object"]},
        {"nickname": "unknown field"},
        {"phone": 14155550100},
    ],
)
def test_invalid_bodies_answer_422(api: TestClient, body: dict[str, Any]) -> None:
    _error(api.post("/v1/contacts", json=body), 422, "validation_error")


def test_duplicate_phone_answers_409_whatever_its_spelling(api: TestClient) -> None:
    first = _create(api, name="Ada", phone="+14155550100")
    err = _error(api.post("/v1/contacts", json={"phone": "+1 415-555-0100"}), 409)
    assert err["code"] == "already_exists"
    assert first["id"] in str(err["details"])
    assert len(api.get("/v1/contacts").json()["data"]) == 1


def test_duplicate_email_answers_409_whatever_its_case(api: TestClient) -> None:
    _create(api, email="ada@example.com")
    _error(api.post("/v1/contacts", json={"email": "ADA@example.com"}), 409, "already_exists")


def test_the_same_phone_is_free_in_another_tenant(api: TestClient, app: Any, db: Database) -> None:
    _create(api, phone="+14155550100")
    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as c:
        assert c.post("/v1/contacts", json={"phone": "+14155550100"}).status_code == 201


def test_patch_updates_only_the_fields_sent(api: TestClient) -> None:
    c = _create(api, name="Ada", phone="+14155550100", attributes={"plan": "pro"})
    r = api.patch(f"/v1/contacts/{c['id']}", json={"name": "Ada King", "email": "ADA@x.org"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Ada King"
    assert body["email"] == "ada@x.org"
    assert body["phone"] == "+14155550100"
    assert body["attributes"] == {"plan": "pro"}
    assert body["updated_at"] > c["updated_at"]
    assert api.get(f"/v1/contacts/{c['id']}").json() == body


def test_patch_phone_is_normalised_and_validated(api: TestClient) -> None:
    c = _create(api, phone="+14155550100")
    r = api.patch(f"/v1/contacts/{c['id']}", json={"phone": "+44 20 7946 0958"})
    assert r.json()["phone"] == "+442079460958"
    _error(api.patch(f"/v1/contacts/{c['id']}", json={"phone": "555"}), 422)
    assert api.get(f"/v1/contacts/{c['id']}").json()["phone"] == "+442079460958"


def test_patch_to_another_contacts_phone_answers_409_and_changes_nothing(
    api: TestClient,
) -> None:
    _create(api, phone="+14155550100", email="ada@example.com")
    grace = _create(api, name="Grace", phone="+14155550111")
    r = api.patch(f"/v1/contacts/{grace['id']}", json={"phone": "+1 415 555 0100"})
    _error(r, 409, "already_exists")
    r = api.patch(f"/v1/contacts/{grace['id']}", json={"email": "Ada@Example.com"})
    _error(r, 409, "already_exists")
    assert api.get(f"/v1/contacts/{grace['id']}").json() == grace


def test_a_released_phone_can_be_taken(api: TestClient) -> None:
    ada = _create(api, phone="+14155550100")
    r = api.patch(f"/v1/contacts/{ada['id']}", json={"phone": None})
    assert r.status_code == 200 and r.json()["phone"] is None
    assert _create(api, phone="+14155550100")["phone"] == "+14155550100"


def test_patch_attributes_replaces_them(api: TestClient) -> None:
    c = _create(api, attributes={"a": 1, "b": 2})
    r = api.patch(f"/v1/contacts/{c['id']}", json={"attributes": {"c": 3}})
    assert r.json()["attributes"] == {"c": 3}


def test_delete_answers_204_then_404(api: TestClient) -> None:
    c = _create(api, name="Ada", phone="+14155550100")
    r = api.delete(f"/v1/contacts/{c['id']}")
    assert r.status_code == 204
    assert r.content == b""
    _error(api.get(f"/v1/contacts/{c['id']}"), 404, "not_found")
    _error(api.delete(f"/v1/contacts/{c['id']}"), 404, "not_found")
    _error(api.patch(f"/v1/contacts/{c['id']}", json={"name": "x"}), 404, "not_found")
    # the phone is free again
    _create(api, phone="+14155550100")


def test_delete_takes_the_contacts_conversations_and_messages(api: TestClient) -> None:
    c = _create(api, name="Ada", phone="+14155550100")
    conv = api.post("/v1/conversations", json={"contact_id": c["id"]}).json()
    msg = api.post(
        f"/v1/conversations/{conv['id']}/messages", json={"role": "user", "content": "hi"}
    )
    assert msg.status_code == 201
    kept = api.post("/v1/conversations", json={"contact": {"name": "Grace"}}).json()

    assert api.delete(f"/v1/contacts/{c['id']}").status_code == 204

    _error(api.get(f"/v1/conversations/{conv['id']}"), 404)
    _error(api.get(f"/v1/conversations/{conv['id']}/messages"), 404)
    listed = api.get("/v1/conversations").json()["data"]
    assert [x["id"] for x in listed] == [kept["id"]]


def test_unknown_and_malformed_ids(api: TestClient) -> None:
    _error(api.get(f"/v1/contacts/{uuid.uuid4()}"), 404, "not_found")
    _error(api.get("/v1/contacts/not-a-uuid"), 422)


def test_another_tenants_contact_is_not_found(
    api: TestClient, app: Any, db: Database, tenant: TenantKey
) -> None:
    c = _create(api, name="Ada")
    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as intruder:
        _error(intruder.get(f"/v1/contacts/{c['id']}"), 404)
        _error(intruder.patch(f"/v1/contacts/{c['id']}", json={"name": "x"}), 404)
        _error(intruder.delete(f"/v1/contacts/{c['id']}"), 404)
        assert intruder.get("/v1/contacts").json()["data"] == []
    assert api.get(f"/v1/contacts/{c['id']}").json()["name"] == "Ada"


def test_requests_without_a_valid_key_answer_401(client: TestClient) -> None:
    _error(client.get("/v1/contacts"), 401, "unauthenticated")
    r = client.get("/v1/contacts", headers={"Authorization": "Bearer tl_nope"})
    _error(r, 401, "unauthenticated")


def test_list_pages_with_a_cursor_newest_first(api: TestClient) -> None:
    ids = [_create(api, name=f"c{i}")["id"] for i in range(7)]
    seen: list[str] = []
    sizes = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = api.get("/v1/contacts", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        sizes.append(len(page["data"]))
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == list(reversed(ids))


def test_a_full_last_page_has_no_next_cursor(api: TestClient) -> None:
    for i in range(4):
        _create(api, name=f"c{i}")
    first = api.get("/v1/contacts", params={"limit": 2}).json()
    second = api.get("/v1/contacts", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(second["data"]) == 2
    assert second["next_cursor"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "x"}])
def test_bad_limits_answer_422(api: TestClient, params: dict[str, Any]) -> None:
    _error(api.get("/v1/contacts", params=params), 422)


@pytest.mark.parametrize("cursor", ["garbage", "eyJhIjogMX0", "WyJ4IiwgInkiXQ"])
def test_a_cursor_we_did_not_issue_answers_400(api: TestClient, cursor: str) -> None:
    _error(api.get("/v1/contacts", params={"cursor": cursor}), 400, "invalid_cursor")
