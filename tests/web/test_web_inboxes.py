"""Settings → Inboxes → New: a form per provider, the webhook URLs and generated secrets
shown once after saving, credentials never sent back to the page, admins only."""

from __future__ import annotations

import re
from collections.abc import Callable

from threadline.channels import registry
from threadline.domain.enums import UserRole
from threadline.settings import Settings
from threadline.store import Database, inboxes

from .conftest import Browser

ADDRESSES = {
    "twilio": "+14155550100",
    "meta": "106540352242922",
    "postmark": "support@example.com",
    "sendgrid": "hello@example.com",
    "smtp": "mail@example.com",
    "zapier": "bright-home-services-sf",
    "vapi": "+14155550101",
    "retell": "+14155550102",
    "voice": "+14155550103",
    "widget": "example.com",
}


def test_every_provider_has_a_form_that_creates_its_inbox(
    admin: Browser, db: Database, settings: Settings
) -> None:
    for name in registry.names():
        provider = registry.get(name)
        page = admin.get(f"/settings/inboxes/new?provider={name}").text
        creds = dict(re.findall(r'name="cred_(\w+)" type="(\w+)"', page))
        assert set(provider.required_credentials) <= set(creds), name
        for secret in ("auth_token", "access_token", "app_secret", "api_key", "server_token"):
            if secret in creds:
                assert creds[secret] == "password", (name, secret)
        posted = {f"cred_{c}": f"{c}-value-{name}" for c in provider.required_credentials}
        if name == "widget":
            posted["opt_allowed_origins"] = "https://example.com\nhttps://www.example.com"
        r = admin.post(
            "/settings/inboxes",
            {"provider": name, "address": ADDRESSES.get(name, "x"), "name": f"My {name}"} | posted,
        )
        assert r.status_code == 200, (name, r.text)
        assert 'id="inbox-created"' in r.text
        [view] = [
            v
            for v in inboxes.list_page(db, settings, admin.tenant_id, limit=50).items
            if v.name == f"My {name}"
        ]
        assert view.provider == name and set(view.credentials_set) >= set(
            provider.required_credentials
        )
        for hook in provider.webhook_names:
            url = f"/webhooks/{name}/{view.id}/{hook}"
            assert url in r.text, (name, hook)
        for generated in provider.generated_credentials:
            assert f'id="secret-{generated}"' in r.text, (name, generated)
        # The secrets typed in never come back.
        for c in provider.required_credentials:
            if c not in ("account_sid", "host"):
                assert posted[f"cred_{c}"] not in r.text, (name, c)
        if name == "widget":
            assert f"data-inbox=&#34;{view.id}&#34;" in r.text
            origins = ["https://example.com", "https://www.example.com"]
            assert view.config["allowed_origins"] == origins


def test_postmark_inbound_url_carries_its_generated_credentials(admin: Browser) -> None:
    r = admin.post(
        "/settings/inboxes",
        {"provider": "postmark", "address": "in@example.com", "cred_server_token": "pm-token"},
    )
    user = re.search(
        r'id="secret-webhook_username" class="url-field" readonly value="([^"]+)"', r.text
    )
    password = re.search(
        r'id="secret-webhook_password" class="url-field" readonly value="([^"]+)"', r.text
    )
    assert user and password
    assert f"://{user.group(1)}:{password.group(1)}@" in r.text
    # Shown once: the settings page never holds them.
    page = admin.get("/settings").text
    assert password.group(1) not in page


def test_a_missing_credential_comes_back_named_without_the_others(admin: Browser) -> None:
    r = admin.post(
        "/settings/inboxes",
        {
            "provider": "twilio",
            "address": "+14155550109",
            "name": "Kept name",
            "cred_auth_token": "sekrit-token-123",
        },
    )
    assert r.status_code == 400
    assert "account_sid" in r.text and 'value="Kept name"' in r.text
    assert "sekrit-token-123" not in r.text
    r = admin.post("/settings/inboxes", {"provider": "nope", "address": "x"})
    assert r.status_code == 400 and "unknown provider" in r.text
    r = admin.post(
        "/settings/inboxes",
        {"provider": "widget", "address": "example.com", "mode": "sometimes"},
    )
    assert r.status_code == 400


def test_only_admins_add_inboxes(admin: Browser, browser_as: Callable[[UserRole], Browser]) -> None:
    assert 'id="new-inbox"' in admin.get("/settings").text
    for role in (UserRole.AGENT, UserRole.VIEWER):
        other = browser_as(role)
        assert 'id="new-inbox"' not in other.get("/settings").text
        assert other.get("/settings/inboxes/new?provider=twilio").status_code == 403
        r = other.post("/settings/inboxes", {"provider": "widget", "address": "example.com"})
        assert r.status_code == 403
    r = admin.client.post("/settings/inboxes", data={"provider": "widget", "address": "a.com"})
    assert r.status_code == 403  # no CSRF token
