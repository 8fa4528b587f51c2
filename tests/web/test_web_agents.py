"""Settings → Agents: the prompt template editor, its preview for a chosen conversation with
the missing variables, and saving (admins only)."""

from __future__ import annotations

from collections.abc import Callable

from threadline.domain.enums import UserRole
from threadline.store import Database, agents, conversations

from .conftest import Browser

TEMPLATE = (
    "Hi {{ contact_first_name }} from {{ business_name }}; your company: {{ contact.company }}"
)


def _setup(admin: Browser, db: Database):  # type: ignore[no-untyped-def]
    agent = agents.create(db, admin.tenant_id, {"name": "Ava", "system_prompt": "Hello."})
    conv = conversations.create(
        db,
        admin.tenant_id,
        {
            "contact": {"name": "Maria Lopez", "attributes": {"plan": "pro"}},
            "assignee_id": agent.id,
        },
    )
    return agent, conv


def test_preview_renders_for_the_conversation_and_names_what_is_missing(
    admin: Browser, db: Database
) -> None:
    agent, conv = _setup(admin, db)
    page = admin.get(f"/settings/agents/{agent.id}").text
    assert 'id="prompt"' in page and f'<option value="{conv.id}" selected>' in page
    r = admin.post(
        f"/settings/agents/{agent.id}/preview",
        {"system_prompt": TEMPLATE, "conversation_id": str(conv.id)},
    )
    assert r.status_code == 200
    assert "Hi Maria from " in r.text
    assert "1 variable without a value here" in r.text and "<code>contact.company</code>" in r.text
    # Against no conversation, the contact's variables are all missing.
    r = admin.post(f"/settings/agents/{agent.id}/preview", {"system_prompt": TEMPLATE})
    assert "<code>contact_first_name</code>" in r.text
    # A template that does not compile says where.
    r = admin.post(f"/settings/agents/{agent.id}/preview", {"system_prompt": "{{ oops"})
    assert 'id="template-error"' in r.text and "line 1" in r.text
    # Text in the prompt stays text on the page.
    r = admin.post(
        f"/settings/agents/{agent.id}/preview", {"system_prompt": "<script>alert(1)</script>"}
    )
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;" in r.text


def test_admins_save_the_template_and_a_bad_one_is_refused(
    admin: Browser, db: Database, browser_as: Callable[[UserRole], Browser]
) -> None:
    agent, conv = _setup(admin, db)
    r = admin.post(
        f"/settings/agents/{agent.id}",
        {"system_prompt": TEMPLATE, "conversation_id": str(conv.id)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith(f"conversation={conv.id}")
    assert agents.get(db, admin.tenant_id, agent.id).system_prompt == TEMPLATE
    r = admin.post(f"/settings/agents/{agent.id}", {"system_prompt": "{% if %}"})
    assert r.status_code == 400 and "not valid" in r.text and "{% if %}" in r.text
    assert agents.get(db, admin.tenant_id, agent.id).system_prompt == TEMPLATE
    for role in (UserRole.AGENT, UserRole.VIEWER):
        other = browser_as(role)
        page = other.get(f"/settings/agents/{agent.id}").text
        assert "readonly" in page and 'id="save-prompt"' not in page
        assert (
            other.post(f"/settings/agents/{agent.id}/preview", {"system_prompt": "x"}).status_code
            == 200
        )
        assert other.post(f"/settings/agents/{agent.id}", {"system_prompt": "x"}).status_code == 403
    assert agents.get(db, admin.tenant_id, agent.id).system_prompt == TEMPLATE
    assert admin.get("/settings/agents/not-an-id").status_code == 404
