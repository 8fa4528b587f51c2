"""The ``threadline`` command, run as a user runs it: a real process with
``THREADLINE_DATABASE_URL`` in its environment (or Typer's CliRunner where the process
boundary adds nothing), against real SQLite and PostgreSQL databases and a live server."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from live import LiveServer, threadline_env
from threadline.cli import app as cli_app
from threadline.store import Database, conversations, migrate, tenants

KEY = re.compile(r"\btl_[A-Za-z0-9_-]{43}\b")


def run_cli(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadline", *args],
        cwd=cwd,
        env=threadline_env(**settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run a command in-process on a database URL; returns the click Result."""
    monkeypatch.chdir(tmp_path)  # no stray .env or threadline.db from the checkout
    for name in list(os.environ):
        if name.startswith("THREADLINE_"):
            monkeypatch.delenv(name)
    runner = CliRunner()

    def invoke(url: str, *args: str, input: str | None = None) -> Any:
        return runner.invoke(cli_app, list(args), env={"THREADLINE_DATABASE_URL": url}, input=input)

    return invoke


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# --- db -----------------------------------------------------------------------------------------


def test_db_upgrade_downgrade_current_and_check(cli: Any, empty_db_url: str) -> None:
    r = cli(empty_db_url, "db", "current")
    assert r.exit_code == 0, r.output
    assert "base (empty)" in r.stdout and "behind" in r.stdout

    r = cli(empty_db_url, "db", "check")
    assert r.exit_code == 1
    assert "missing table conversations" in r.stderr

    r = cli(empty_db_url, "db", "upgrade")
    assert r.exit_code == 0, r.output
    assert f"revision {migrate.head()}" in r.stdout

    r = cli(empty_db_url, "db", "current")
    assert f"database: {migrate.head()}" in r.stdout and "(current)" in r.stdout

    r = cli(empty_db_url, "db", "check")
    assert r.exit_code == 0, r.output
    assert "schema matches the models" in r.stdout

    r = cli(empty_db_url, "db", "downgrade", "base")
    assert r.exit_code == 0, r.output
    assert "revision base" in r.stdout
    assert cli(empty_db_url, "db", "check").exit_code == 1

    r = cli(empty_db_url, "db", "upgrade")
    assert r.exit_code == 0, r.output
    assert cli(empty_db_url, "db", "check").exit_code == 0


def test_db_upgrade_to_an_unknown_revision_is_a_clear_error(cli: Any, empty_db_url: str) -> None:
    r = cli(empty_db_url, "db", "upgrade", "nope")
    assert r.exit_code == 1
    assert "nope" in r.stderr
    assert isinstance(r.exception, SystemExit)  # a clean exit, not a crash
    r = cli(empty_db_url, "db", "downgrade")  # nothing to downgrade
    assert r.exit_code == 1
    assert isinstance(r.exception, SystemExit)


def test_db_check_exits_1_and_names_an_index_dropped_by_hand(
    cli: Any, empty_db_url: str, tmp_path: Path
) -> None:
    assert cli(empty_db_url, "db", "upgrade").exit_code == 0
    assert cli(empty_db_url, "db", "check").exit_code == 0

    db = Database.from_url(empty_db_url)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_conversations_tenant_id_contact_id_last_activity_at_id")
    db.dispose()

    r = run_cli("db", "check", cwd=tmp_path, database_url=empty_db_url)
    assert r.returncode == 1
    assert (
        "missing index ix_conversations_tenant_id_contact_id_last_activity_at_id on conversations"
        in r.stderr
    )
    _no_traceback(r.stdout, r.stderr)


def _says_to_upgrade(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 1
    assert "threadline db upgrade" in r.stderr
    assert not KEY.search(r.stdout)
    _no_traceback(r.stdout, r.stderr)


def test_key_create_before_db_upgrade_says_to_run_it(empty_db_url: str, tmp_path: Path) -> None:
    _says_to_upgrade(
        run_cli("key", "create", "--name", "ci", cwd=tmp_path, database_url=empty_db_url)
    )


@pytest.mark.parametrize("backend", ["sqlite"])  # the PostgreSQL path is covered just above
@pytest.mark.parametrize(
    "args",
    [
        ("tenant", "create", "acme"),
        ("tenant", "list"),
        ("key", "list"),
        ("user", "create", "ops@example.com", "--password", "pw-123456"),
    ],
)
def test_other_commands_before_db_upgrade_say_to_run_it(
    cli: Any, empty_db_url: str, args: tuple[str, ...]
) -> None:
    r = cli(empty_db_url, *args)
    assert r.exit_code == 1
    assert isinstance(r.exception, SystemExit)  # a clean exit, not a crash
    assert "threadline db upgrade" in r.stderr


def test_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    r = run_cli("db", "current", cwd=tmp_path, database_url="mysql://nobody@nowhere/db")
    assert r.returncode == 1
    assert "THREADLINE_DATABASE_URL" in r.stderr
    _no_traceback(r.stdout, r.stderr)


# --- tenant, key, user --------------------------------------------------------------------------


def test_tenant_create_and_list(cli: Any, db_url: str, db: Database) -> None:
    r = cli(db_url, "tenant", "create", "acme", "--name", "Acme Inc.")
    assert r.exit_code == 0, r.output
    assert "created tenant acme" in r.stdout
    assert tenants.get_tenant(db, "acme").name == "Acme Inc."

    r = cli(db_url, "tenant", "create", "acme")
    assert r.exit_code == 1
    assert "already exists" in r.stderr
    assert isinstance(r.exception, SystemExit)

    r = cli(db_url, "tenant", "list")
    assert r.exit_code == 0
    assert "acme" in r.stdout and "Acme Inc." in r.stdout


@pytest.mark.parametrize("slug", ["Acme", "acme corp", "acme_eu", "acme-", "", "a" * 65, "a/b"])
def test_tenant_create_rejects_a_bad_slug(cli: Any, db_url: str, db: Database, slug: str) -> None:
    r = cli(db_url, "tenant", "create", slug)
    assert r.exit_code == 1
    assert "slug" in r.stderr
    assert tenants.list_tenants(db) == []


def test_key_create_prints_the_key_last_and_it_works_against_the_api(
    db_url: str, db: Database, app: Any, tmp_path: Path
) -> None:
    acme = tenants.create_tenant(db, "acme")
    r = run_cli(
        "key", "create", "--name", "ci", "--tenant", "acme", cwd=tmp_path, database_url=db_url
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    key = lines[-1]
    assert KEY.fullmatch(key), r.stdout
    assert key not in "\n".join(lines[:-1])  # shown exactly once

    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as api:
        created = api.post("/v1/conversations", json={"contact": {"name": "Ada"}})
        assert created.status_code == 201, created.text
        assert api.get("/v1/conversations").json()["data"][0]["id"] == created.json()["id"]
    # the key acts for the tenant it was made for
    conv = conversations.get(db, acme.id, uuid.UUID(created.json()["id"]))
    assert conv.tenant_id == acme.id


def test_key_create_uses_the_default_tenant(cli: Any, db_url: str, db: Database) -> None:
    r = cli(db_url, "key", "create", "--name", "ci")
    assert r.exit_code == 1
    assert "no tenant with slug 'default'" in r.stderr

    default = tenants.create_tenant(db, "default")
    r = cli(db_url, "key", "create", "--name", "ci")
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert tenants.authenticate(db, key).tenant_id == default.id


def test_key_create_for_an_unknown_tenant_is_a_clear_error(cli: Any, db_url: str) -> None:
    r = cli(db_url, "key", "create", "--name", "ci", "--tenant", "nobody")
    assert r.exit_code == 1
    assert "no tenant with slug 'nobody'" in r.stderr
    assert not KEY.search(r.stdout)


def test_revoked_keys_answer_401(cli: Any, db_url: str, db: Database, app: Any) -> None:
    tenants.create_tenant(db, "acme")
    made = []
    for name in ("laptop", "ci"):
        r = cli(db_url, "key", "create", "--name", name, "--tenant", "acme")
        assert r.exit_code == 0, r.output
        key_id = re.search(r"created key (\S+)", r.stdout).group(1)  # type: ignore[union-attr]
        made.append((key_id, r.stdout.strip().splitlines()[-1]))
    (laptop_id, laptop_key), (_, ci_key) = made

    r = cli(db_url, "key", "list", "--tenant", "acme")
    assert r.exit_code == 0
    assert laptop_id in r.stdout and "laptop" in r.stdout
    assert laptop_key not in r.stdout and ci_key not in r.stdout  # prefixes only

    with TestClient(app, raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {laptop_key}"}
        assert client.get("/v1/conversations", headers=auth).status_code == 200

        r = cli(db_url, "key", "revoke", laptop_id, "--tenant", "acme")
        assert r.exit_code == 0, r.output
        assert f"revoked key {laptop_id}" in r.stdout

        answer = client.get("/v1/conversations", headers=auth)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
        answer = client.post("/v1/conversations", headers=auth, json={})
        assert answer.status_code == 401
        ci = {"Authorization": f"Bearer {ci_key}"}
        assert client.get("/v1/conversations", headers=ci).status_code == 200

    r = cli(db_url, "key", "revoke", str(uuid.uuid4()), "--tenant", "acme")
    assert r.exit_code == 1
    assert "no such API key" in r.stderr


def test_a_key_cannot_be_revoked_through_another_tenant(
    cli: Any, db_url: str, db: Database
) -> None:
    acme = tenants.create_tenant(db, "acme")
    tenants.create_tenant(db, "other")
    key, token = tenants.create_api_key(db, acme.id, "ci")
    r = cli(db_url, "key", "revoke", str(key.id), "--tenant", "other")
    assert r.exit_code == 1
    assert tenants.authenticate(db, token).tenant_id == acme.id


def test_user_create_with_a_password_option(cli: Any, db_url: str, db: Database) -> None:
    acme = tenants.create_tenant(db, "acme")
    r = cli(
        db_url, "user", "create", "Ops@Example.com", "--password", "correct horse",
        "--role", "admin", "--name", "Ops", "--tenant", "acme",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "created admin ops@example.com" in r.stdout
    assert "correct horse" not in r.output

    user = tenants.verify_user(db, acme.id, "ops@example.com", "correct horse")
    assert user is not None
    assert user.role.value == "admin" and user.name == "Ops"
    assert user.password_hash != "correct horse"
    assert tenants.verify_user(db, acme.id, "ops@example.com", "wrong horse") is None

    r = cli(db_url, "user", "create", "ops@example.com", "--password", "x" * 10, "--tenant", "acme")
    assert r.exit_code == 1
    assert "already exists" in r.stderr


def test_user_create_asks_for_the_password(cli: Any, db_url: str, db: Database) -> None:
    default = tenants.create_tenant(db, "default")
    r = cli(db_url, "user", "create", "agent@example.com", input="s3cret-pw\ns3cret-pw\n")
    assert r.exit_code == 0, r.output
    assert "s3cret-pw" not in r.stdout
    user = tenants.verify_user(db, default.id, "agent@example.com", "s3cret-pw")
    assert user is not None and user.role.value == "agent"


def test_user_create_refuses_an_empty_password(cli: Any, db_url: str, db: Database) -> None:
    default = tenants.create_tenant(db, "default")
    r = cli(db_url, "user", "create", "agent@example.com", "--password", "")
    assert r.exit_code == 1
    assert "password" in r.stderr
    assert tenants.verify_user(db, default.id, "agent@example.com", "") is None


# --- serve ----------------------------------------------------------------------------------------


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start ``threadline serve`` in a folder; every server is stopped at teardown."""
    started: list[LiveServer] = []

    def start(cwd: Path, **settings: str) -> LiveServer:
        server = LiveServer(cwd, logs=tmp_path / f"server{len(started)}", **settings)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _curl_from(text: str) -> list[str]:
    """The curl command printed in ``text``, split as a POSIX shell would."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("curl "))
    command = []
    for line in lines[start:]:
        command.append(line)
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split("\n".join(command).replace("\\\n", " "))


def _as_httpx(argv: list[str]) -> httpx.Request:
    """The request a curl command line makes (the options the banner may use)."""
    assert argv[0] == "curl"
    method, url, headers, data = "GET", None, {}, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-s":
            continue
        elif arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(args)
            method = "POST" if method == "GET" else method
        elif arg.startswith("http://"):
            url = arg
        else:
            raise AssertionError(f"unexpected curl argument {arg!r} in {argv}")
    assert url is not None
    return httpx.Request(method, url, headers=headers, content=data)


def test_first_start_on_an_empty_folder_prints_a_key_and_a_working_curl(
    start_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    folder = tmp_path / "fresh"
    folder.mkdir()
    server = start_server(folder)  # no settings at all

    out = server.stdout
    keys = set(KEY.findall(out))
    assert len(keys) == 1, out
    key = keys.pop()
    assert (folder / "threadline.db").exists()

    request = _as_httpx(_curl_from(out))
    assert request.url.host == "127.0.0.1"
    assert str(request.url).startswith(server.base)
    assert request.headers["authorization"] == f"Bearer {key}"
    with httpx.Client() as client:
        answer = client.send(request)
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "active"

    server.stop()
    assert server.proc.returncode == 0, server.stderr
    _no_traceback(server.stderr)

    again = start_server(folder)
    assert not KEY.search(again.stdout), again.stdout
    assert "Created tenant" not in again.stdout
    listed = httpx.get(f"{again.base}/v1/conversations", headers={"Authorization": f"Bearer {key}"})
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["data"]] == [answer.json()["id"]]
    db = Database.from_url(f"sqlite:///{folder / 'threadline.db'}")
    try:
        assert [t.slug for t in tenants.list_tenants(db)] == ["default"]
        assert migrate.check(db).ok
    finally:
        db.dispose()


def test_bootstrap_makes_one_tenant_and_one_key_even_when_racing(db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        tokens = [t for t in pool.map(lambda _: tenants.bootstrap(db), range(4)) if t]
    assert len(tokens) == 1
    default = tenants.get_tenant(db, "default")
    assert tenants.authenticate(db, tokens[0]).tenant_id == default.id
    assert len(tenants.list_api_keys(db, default.id)) == 1
    assert tenants.bootstrap(db) is None


def test_serve_on_a_migrated_database_with_tenants_prints_no_key(
    start_server: Callable[..., LiveServer], db_url: str, db: Database, tmp_path: Path
) -> None:
    tenants.create_tenant(db, "acme")
    server = start_server(tmp_path, database_url=db_url)
    assert not KEY.search(server.stdout)
    assert [t.slug for t in tenants.list_tenants(db)] == ["acme"]
    assert httpx.get(f"{server.base}/readyz").status_code == 200
