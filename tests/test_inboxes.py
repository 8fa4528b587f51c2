"""Inboxes over HTTP and the CLI: webhook URLs to paste, credentials write-only and sealed at
rest, the provider's rules (required credentials, generated secrets), and the key that seals
them (generated beside the database on a development server's first start)."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs
from typer.testing import CliRunner

from conftest import make_tenant
from test_bad_input import counts
from threadline.api.app import create_app
from threadline.cli import app as cli_app
from threadline.domain.enums import Channel
from threadline.settings import Settings
from threadline.store import Database, inboxes, secrets
from threadline.store.models import Inbox

PUBLIC = "https://tl.example.com"
TWILIO = {
    "name": "Main line",
    "channel": "sms",
    "provider": "twilio",
    "address": "+1 415 555 0100",
    "credentials": {"account_sid": "AC123", "auth_token": "tok-secret-123"},
}


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url, environment="test", log_level="warning", public_url=PUBLIC + "/"
    )


def create(api: TestClient, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = api.post("/v1/inboxes", json=body)
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def test_create_answers_the_webhook_urls_and_never_the_credentials(api: TestClient) -> None:
    inbox = create(api, TWILIO)
    iid = inbox["id"]
    assert inbox["address"] == "+14155550100"
    assert inbox["provider"] == "twilio" and inbox["channel"] == "sms"
    assert inbox["mode"] == "approval"
    assert inbox["webhooks"] == {
        "inbound": f"{PUBLIC}/webhooks/twilio/{iid}/inbound",
        "status": f"{PUBLIC}/webhooks/twilio/{iid}/status",
    }
    assert inbox["credentials_set"] == ["account_sid", "auth_token"]
    for r in (
        api.get(f"/v1/inboxes/{iid}"),
        api.get("/v1/inboxes"),
        api.post("/v1/inboxes", json=TWILIO),
    ):
        assert "tok-secret-123" not in r.text and "AC123" not in r.text
    assert api.get(f"/v1/inboxes/{iid}").json()["webhooks"] == inbox["webhooks"]


def test_credentials_are_sealed_at_rest(api: TestClient, db: Database, settings: Settings) -> None:
    inbox = create(api, TWILIO)
    with db.connect() as conn:
        raw = conn.execute(sa.text("SELECT * FROM inboxes")).mappings().one()
    assert "tok-secret-123" not in str(dict(raw))
    caller = uuid.UUID(str(raw["tenant_id"]))
    config = inboxes.config_for(db, caller, uuid.UUID(inbox["id"]), settings)
    assert config.credential("auth_token") == "tok-secret-123"
    assert config.webhook_urls["status"] == inbox["webhooks"]["status"]
    assert config.channel == Channel.SMS and config.address == "+14155550100"
    assert "tok-secret-123" not in repr(config)
    # the three-argument form the worker uses: settings bound to the database by the app
    assert inboxes.config_for(db, caller, uuid.UUID(inbox["id"])).credentials == config.credentials


def test_missing_required_credentials_are_named_and_nothing_is_stored(
    api: TestClient, db: Database
) -> None:
    before = counts(db)
    r = api.post("/v1/inboxes", json=TWILIO | {"credentials": {"account_sid": "AC1"}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["missing"] == ["auth_token"]
    assert "auth_token" in r.json()["error"]["message"]
    for body in (
        TWILIO | {"provider": "nope"},
        TWILIO | {"channel": "email"},
        TWILIO | {"address": "not a number"},
        TWILIO | {"mode": "auto_send"},
        TWILIO | {"credentials": {"account_sid": {"x": 1}}},
    ):
        assert api.post("/v1/inboxes", json=body).status_code == 422, body
    assert counts(db) == before


def test_generated_credentials_are_shown_once(api: TestClient) -> None:
    inbox = create(api, {"provider": "zapier", "address": "biz-123", "name": "Yelp"})
    token = inbox["generated_credentials"]["webhook_token"]
    assert len(token) >= 24
    assert inbox["channel"] == "yelp"
    assert inbox["credentials_set"] == ["webhook_token"]
    assert set(inbox["webhooks"]) == {"inbound", "outbox"}
    again = api.get(f"/v1/inboxes/{inbox['id']}")
    assert token not in again.text and "generated_credentials" not in again.json()


def test_a_url_secret_is_in_the_url_on_create_and_masked_after(api: TestClient) -> None:
    inbox = create(
        api,
        {
            "provider": "sendgrid",
            "address": "Help@Shop.Example",
            "credentials": {"api_key": "SG.x"},
        },
    )
    secret = inbox["generated_credentials"]["inbound_secret"]
    assert inbox["address"] == "help@shop.example"
    assert (
        inbox["webhooks"]["inbound"] == f"{PUBLIC}/webhooks/sendgrid/{inbox['id']}/inbound/{secret}"
    )
    shown = api.get(f"/v1/inboxes/{inbox['id']}").json()
    assert shown["webhooks"]["inbound"].endswith("/inbound/{secret}")
    assert secret not in str(shown)
    # rotating it shows the new URL once
    rotated = api.patch(
        f"/v1/inboxes/{inbox['id']}", json={"credentials": {"inbound_secret": "new-s3cret"}}
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["webhooks"]["inbound"].endswith("/inbound/new-s3cret")


def test_patch_merges_credentials_and_changes_mode(
    api: TestClient, db: Database, settings: Settings
) -> None:
    inbox = create(api, TWILIO)
    url = f"/v1/inboxes/{inbox['id']}"
    r = api.patch(
        url,
        json={
            "mode": "auto",
            "credentials": {"signing_key_secret": "sk"},
            "config": {"api_base_url": "http://127.0.0.1:9"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "auto"
    assert r.json()["credentials_set"] == ["account_sid", "auth_token", "signing_key_secret"]
    assert r.json()["config"] == {"api_base_url": "http://127.0.0.1:9"}
    assert api.patch(url, json={"credentials": {"auth_token": None}}).status_code == 422
    r = api.patch(url, json={"credentials": {"signing_key_secret": None}, "mode": "off"})
    assert (
        r.json()["credentials_set"] == ["account_sid", "auth_token"] and r.json()["mode"] == "off"
    )
    with db.connect() as conn:
        tenant_id = uuid.UUID(str(conn.execute(sa.text("SELECT tenant_id FROM inboxes")).scalar()))
    config = inboxes.config_for(db, tenant_id, uuid.UUID(inbox["id"]), settings)
    assert config.api_base("https://api.twilio.com") == "http://127.0.0.1:9"
    assert config.credential("auth_token") == "tok-secret-123"


def test_list_get_delete_and_other_tenants(api: TestClient, app: Any, db: Database) -> None:
    ids = [create(api, TWILIO | {"address": f"+1415555010{i}"})["id"] for i in range(3)]
    page = api.get("/v1/inboxes", params={"limit": 2}).json()
    assert [i["id"] for i in page["data"]] == ids[::-1][:2]
    rest = api.get("/v1/inboxes", params={"cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    assert create(api, TWILIO | {"address": "+14155550100"}, status=409)

    other = make_tenant(db)
    with TestClient(app, headers=other.headers, raise_server_exceptions=False) as c:
        for method in ("GET", "PATCH", "DELETE"):
            r = c.request(method, f"/v1/inboxes/{ids[0]}", json={} if method == "PATCH" else None)
            assert r.status_code == 404, (method, r.text)
        assert c.get("/v1/inboxes").json()["data"] == []
    assert api.delete(f"/v1/inboxes/{ids[0]}").status_code == 204
    assert api.get(f"/v1/inboxes/{ids[0]}").status_code == 404


# --- the key that seals credentials -----------------------------------------------------------


def test_a_development_server_generates_its_key_beside_the_database_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "tl.db"
    path.parent.mkdir()
    dev = Settings(database_url=f"sqlite:///{path}", environment="development")
    with capture_logs() as logs:
        key = secrets.secret_key(dev)
    file = path.parent / secrets.SECRET_FILE
    assert file.read_text().strip() == key
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    assert [e["event"] for e in logs] == ["secret_key_generated"]
    assert logs[0]["path"] == str(file)
    with capture_logs() as logs:
        assert secrets.secret_key(dev) == key  # used from then on
    assert logs == []
    sealed = secrets.SecretBox(key).seal({"auth_token": "t"})
    assert secrets.SecretBox(secrets.secret_key(dev)).open(sealed) == {"auth_token": "t"}
    with pytest.raises(secrets.CredentialsUnreadable):
        secrets.SecretBox("another key").open(sealed)
    # a configured key is used as is, and production refuses the default
    assert secrets.secret_key(dev.model_copy(update={"secret_key": SecretStr("k" * 40)})) != key
    with pytest.raises(ValueError, match="THREADLINE_SECRET_KEY"):
        Settings(database_url=f"sqlite:///{path}", environment="production")


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_inbox_create_prints_the_urls_and_list_shows_it(
    db_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("THREADLINE_"):
            monkeypatch.delenv(name)
    t = make_tenant(db, "acme")
    env = {"THREADLINE_DATABASE_URL": db_url, "THREADLINE_PUBLIC_URL": PUBLIC}
    runner = CliRunner()
    args = ["inbox", "create", "--name", "Yelp", "--provider", "zapier", "--address", "biz-1"]
    r = runner.invoke(cli_app, [*args, "--mode", "auto", "--tenant", "acme"], env=env)
    assert r.exit_code == 0, r.output
    row = Database.from_url(db_url)
    with row.read() as s:
        inbox = s.scalars(sa.select(Inbox)).one()
    row.dispose()
    assert f"outbox: {PUBLIC}/webhooks/zapier/{inbox.id}/outbox" in r.output
    assert "webhook_token: " in r.output
    assert inbox.tenant_id == t.tenant_id and inbox.mode == "auto"
    twilio = [
        "inbox", "create", "-n", "SMS", "--provider", "twilio", "--address", "+14155550100",
        "-c", "account_sid=AC1", "-c", "auth_token=tok", "--config", "messaging_service_sid=MG1",
        "--tenant", "acme",
    ]  # fmt: skip
    r = runner.invoke(cli_app, twilio, env=env)
    assert r.exit_code == 0, r.output
    assert "/inbound" in r.output and "tok" not in r.output.replace("webhook_token", "")
    r = runner.invoke(
        cli_app,
        [
            "inbox",
            "create",
            "-n",
            "x",
            "--provider",
            "twilio",
            "--address",
            "+14155550101",
            "--tenant",
            "acme",
        ],
        env=env,
    )
    assert r.exit_code == 1 and "account_sid, auth_token" in r.output
    r = runner.invoke(cli_app, ["inbox", "list", "--tenant", "acme"], env=env)
    assert r.exit_code == 0, r.output
    assert str(inbox.id) in r.output and "+14155550100" in r.output and "zapier" in r.output
    assert (tmp_path / secrets.SECRET_FILE).exists() or (
        Path(db_url.removeprefix("sqlite:///")).parent / secrets.SECRET_FILE
    ).exists()


def test_the_app_starts_with_no_inboxes(settings: Settings, db: Database) -> None:
    with TestClient(create_app(settings, db)) as c:
        assert c.get("/healthz").status_code == 200
