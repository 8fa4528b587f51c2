"""The README cannot drift: its settings and CLI tables match the code, and its tour runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import typer

from conftest import make_tenant
from live import LiveServer
from threadline.cli import app as cli_app
from threadline.settings import Settings
from threadline.store import Database, migrate

README = (Path(__file__).parents[1] / "README.md").read_text()


def _section(name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", README, re.S)
    assert match, f"README has no {name} section"
    return match.group(1)


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"`(THREADLINE_[A-Z_]+)`", _section("settings")))
    actual = {f"THREADLINE_{name.upper()}" for name in Settings.model_fields}
    assert documented == actual


def _commands(app: typer.Typer, prefix: str = "threadline") -> set[str]:
    out = {f"{prefix} {c.name or c.callback.__name__}" for c in app.registered_commands}  # type: ignore[union-attr]
    for group in app.registered_groups:
        out |= _commands(group.typer_instance, f"{prefix} {group.name}")  # type: ignore[arg-type]
    return out


def test_every_cli_command_is_documented() -> None:
    documented = set(re.findall(r"`(threadline(?: [a-z]+){1,2})", _section("cli")))
    assert _commands(cli_app) <= documented
    assert documented <= _commands(cli_app)


def test_quickstart_is_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["make run", "make test"]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.parametrize("backend", ["sqlite"])
def test_readme_tour_runs_against_a_live_server(db: Database, db_url: str, tmp_path: Path) -> None:
    migrate.upgrade(db)
    key = make_tenant(db).token
    with LiveServer(tmp_path, database_url=db_url, log_level="warning") as server:
        base = server.base
        tour = _section("tour").split("```bash", 1)[1].rsplit("```", 1)[0]
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", tour],
            env=os.environ | {"TL": base, "KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr + server.stderr
        assert result.stdout.strip().endswith("409")
        messages = httpx.get(
            f"{base}/v1/conversations?limit=1", headers={"Authorization": f"Bearer {key}"}
        ).json()["data"]
        assert messages[0]["message_count"] == 5
        assert messages[0]["status"] == "archived"
