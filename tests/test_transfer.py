"""A tenant exported as JSONL, imported into an empty database of the other backend, and
exported again: the same lines (only the header's export time differs)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import TenantKey, create_pg_database
from threadline.cli import app as cli_app
from threadline.domain.errors import AlreadyExists, InvalidInput
from threadline.store import Database, migrate, tenant_dump, tenants


def _seed(api: TestClient, db: Database, tenant: TenantKey) -> None:
    agent = api.post(
        "/v1/agents",
        json={"name": "Front desk", "model": "gpt-test", "tools": [], "settings": {"a": 1}},
    )
    assert agent.status_code == 201, agent.text
    inbox = api.post(
        "/v1/inboxes",
        json={
            "name": "Main line",
            "channel": "sms",
            "provider": "twilio",
            "address": "+1 415 555 0100",
            "credentials": {"account_sid": "AC123", "auth_token": "tok-secret-123"},
        },
    )
    assert inbox.status_code == 201, inbox.text
    tenants.create_user(db, tenant.tenant_id, "op@example.com", "correct horse battery", "admin")
    conv = api.post(
        "/v1/conversations",
        json={
            "contact": {"name": "Ada", "phone": "+14155550100", "email": "ada@example.com"},
            "title": "Sofa",
            "metadata": {"k": [1, 2.5, None, "é"]},
        },
    ).json()
    first = api.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"role": "user", "content": "Hello ✓", "channel_data": {"x": {"y": True}}},
    ).json()
    batch = [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
            "model_used": "gpt-test",
            "prompt_used": "p",
            "token_usage": {"prompt_tokens": 3},
            "cost_usd": 0.000123456789,
            "response_time_ms": 12,
            "parent_message_id": first["id"],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42", "is_flagged": True},
        {"role": "assistant", "content": "Done", "external_message_id": "ext-1"},
    ]
    r = api.post(f"/v1/conversations/{conv['id']}/messages/batch", json={"messages": batch})
    assert r.status_code == 201, r.text
    sms = api.post(
        "/v1/conversations", json={"contact_id": conv["contact_id"], "inbox_id": inbox.json()["id"]}
    ).json()
    sent = api.post(
        f"/v1/conversations/{sms['id']}/messages",
        json={"role": "assistant", "content": "Queued", "send": True},
    )
    assert sent.status_code == 201, sent.text
    assert (
        api.patch(f"/v1/conversations/{conv['id']}", json={"status": "archived"}).status_code == 200
    )


def _export(db: Database, tenant_id: Any) -> list[str]:
    buffer = io.StringIO()
    tenant_dump.export_tenant(db, tenant_id, buffer)
    return buffer.getvalue().splitlines()


def _other_backend(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if backend == "postgresql":
        path = tmp_path / "target.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return Database.from_url(f"sqlite:///{path}")
    url = create_pg_database(request.getfixturevalue("pg_base_url"))
    target = Database.from_url(url)
    migrate.upgrade(target)
    return target


def test_round_trip_across_backends_is_identical(
    api: TestClient,
    db: Database,
    tenant: TenantKey,
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    _seed(api, db, tenant)
    first = _export(db, tenant.tenant_id)
    types = {json.loads(line)["type"] for line in first[1:]}
    assert types >= {
        "agents",
        "users",
        "inboxes",
        "contacts",
        "contact_identities",
        "conversations",
        "messages",
        "message_deliveries",
        "model_calls",
        "message_moderation",
        "conversation_events",
        "events",
    }
    text = "\n".join(first)
    assert "tok-secret-123" not in text and "secrets_encrypted" not in text
    assert "password_hash" not in text

    target = _other_backend(backend, request, tmp_path)
    try:
        loaded = tenant_dump.import_tenant(target, first)
        assert loaded.slug == tenant.slug
        assert loaded.counts["messages"] == 5
        again = _export(target, tenants.get_tenant(target, tenant.slug).id)
        header, header_again = json.loads(first[0]), json.loads(again[0])
        header.pop("exported_at"), header_again.pop("exported_at")
        assert header == header_again
        assert again[1:] == first[1:]
        # the same file again clashes and changes nothing
        with pytest.raises(AlreadyExists):
            tenant_dump.import_tenant(target, first)
        with pytest.raises(AlreadyExists):
            tenant_dump.import_tenant(target, first, slug="copy")  # ids are kept: they clash
        with target.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM tenants")).scalar_one() == 1
        # imported messages are searchable
        with target.connect() as conn:
            found = conn.execute(
                sa.text("SELECT count(*) FROM messages WHERE content = 'Done'")
            ).scalar_one()
        assert found == 1
    finally:
        target.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bad_line_imports_nothing(db: Database, tenant: TenantKey, api: TestClient) -> None:
    _seed(api, db, tenant)
    lines = _export(db, tenant.tenant_id)
    with db.transaction() as conn:  # an empty database but for the tenant list
        conn.exec_driver_sql("DELETE FROM tenants")
    for bad, expected in (
        ("{not json", "line 4: not JSON"),
        ('{"type": "messages", "data": {"nope": 1}}', "line 4: unknown messages columns: nope"),
        ('{"type": "secrets", "data": {}}', "line 4: expected"),
        ('{"type": "messages", "data": {"id": "x"}}', "line 4: a bad messages value"),
    ):
        broken = [*lines[:3], bad, *lines[3:]]
        with pytest.raises(InvalidInput) as caught:
            tenant_dump.import_tenant(db, broken)
        assert caught.value.message.startswith(expected), caught.value.message
        with db.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM tenants").scalar_one() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM contacts").scalar_one() == 0
    with pytest.raises(InvalidInput, match="line 1: not a Threadline export"):
        tenant_dump.import_tenant(db, lines[1:])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_export_and_import(
    db: Database, db_url: str, tenant: TenantKey, api: TestClient, tmp_path: Path
) -> None:
    _seed(api, db, tenant)
    runner = CliRunner()
    out = tmp_path / "tenant.jsonl"
    env = {"THREADLINE_DATABASE_URL": db_url}
    r = runner.invoke(cli_app, ["export", "--tenant", tenant.slug, "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines()[1:] == _export(db, tenant.tenant_id)[1:]
    r = runner.invoke(cli_app, ["export", "--tenant", tenant.slug], env=env)
    assert r.exit_code == 0
    assert json.loads(r.stdout.splitlines()[0])["tenant"]["slug"] == tenant.slug

    path = tmp_path / "target.db"
    shutil.copy(Path(sa.make_url(db_url).database or ""), path)  # then emptied
    target = Database.from_url(f"sqlite:///{path}")
    with target.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM tenants")
    target.dispose()
    env2 = {"THREADLINE_DATABASE_URL": f"sqlite:///{path}"}
    r = runner.invoke(cli_app, ["import", "jsonl", str(out), "--tenant", "copy"], env=env2)
    assert r.exit_code == 0, r.output
    assert "messages" in r.stdout and "copy" in r.stdout
    r = runner.invoke(cli_app, ["import", "jsonl", str(out), "--tenant", "copy"], env=env2)
    assert r.exit_code == 1
    assert "already has data" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli_app, ["import", "jsonl", str(tmp_path / "missing.jsonl")], env=env2)
    assert r.exit_code == 1 and "no such file" in r.output
