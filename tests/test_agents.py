"""POST/GET/PATCH /v1/agents and the prompt preview."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

Json = dict[str, Any]

TOOL = {
    "type": "function",
    "function": {
        "name": "book_visit",
        "description": "Book a site visit",
        "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
    },
}


def test_create_read_list_update(api: TestClient) -> None:
    r = api.post(
        "/v1/agents",
        json={
            "name": "Front desk",
            "model": "gpt-4o-mini",
            "system_prompt": "Hi <contact_first_name/>",
            "tools": [TOOL],
            "settings": {"time_zone": "Europe/Paris"},
        },
    )
    assert r.status_code == 201, r.text
    agent = r.json()
    assert agent["kind"] == "ai" and agent["tools"] == [TOOL]
    assert api.get(f"/v1/agents/{agent['id']}").json() == agent
    assert [a["id"] for a in api.get("/v1/agents").json()["data"]] == [agent["id"]]
    r = api.patch(f"/v1/agents/{agent['id']}", json={"model": "gpt-4o", "tools": []})
    assert r.status_code == 200
    assert r.json()["model"] == "gpt-4o" and r.json()["tools"] == []
    assert r.json()["system_prompt"] == "Hi <contact_first_name/>"
    assert api.post("/v1/agents", json={"name": "Front desk"}).status_code == 409


def test_bad_agents_are_refused(api: TestClient) -> None:
    r = api.post("/v1/agents", json={"name": "x", "system_prompt": "Hi {{ name "})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["line"] == 1
    r = api.post("/v1/agents", json={"name": "x", "tools": [{"type": "function"}]})
    assert r.status_code == 422
    assert api.post("/v1/agents", json={"name": ""}).status_code == 422
    assert api.get("/v1/agents/019a0000-0000-7000-8000-000000000000").status_code == 404
    assert api.get("/v1/agents", params={"kind": "ai"}).status_code == 422
    assert api.get("/v1/agents").json()["data"] == []


def test_preview_renders_for_a_conversation(api: TestClient, conversation: Json) -> None:
    agent = api.post(
        "/v1/agents",
        json={
            "name": "Front desk",
            "system_prompt": "Hello {{ contact_first_name }} from {{ contact.company }}, "
            'agent <agent_name/>, <contact_email default="no email"/>.',
        },
    ).json()
    r = api.post(f"/v1/agents/{agent['id']}/preview", json={"conversation_id": conversation["id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"] == "Hello Ada from , agent Front desk, no email."
    assert body["missing"] == ["contact.company", "contact_email"]
    other = "019a0000-0000-7000-8000-000000000000"
    r = api.post(f"/v1/agents/{agent['id']}/preview", json={"conversation_id": other})
    assert r.status_code == 404


def test_another_tenants_agent_is_not_found(api: TestClient, app: Any, db: Any) -> None:
    from conftest import make_tenant

    agent = api.post("/v1/agents", json={"name": "Mine"}).json()
    other = make_tenant(db)
    with TestClient(app, headers=other.headers) as them:
        assert them.get(f"/v1/agents/{agent['id']}").status_code == 404
        assert them.patch(f"/v1/agents/{agent['id']}", json={"name": "x"}).status_code == 404
