"""Dashboard benchmark: how long every page of the dashboard takes on the demo data.

On a temporary SQLite file (or ``--database-url``, e.g. a PostgreSQL database), a tenant is
filled with the demo data (``threadline demo``: a conversation per script, on every channel,
with an agent, a drafted reply, scores and actions) and an admin signs in. Every page is
then requested ``--requests`` times in-process (the app with its middleware, templates and
database, through Starlette's test client, no network), the pages taking turns in rounds
(``_common.compare``) so a slow spell of the machine falls on all of them alike. The
templates are compiled by one request to each page before the clock starts.

The pages are those tests/web/test_web_pages.py checks: the inbox (all, and filtered), every
demo conversation, a contact, analytics, settings, the new-inbox form, the prompt editor and
search (plain, and keyword with ``OR``). Target: every page's p95 under 100 ms.

    python bench/dashboard.py                # 200 requests a page: about a minute
    python bench/dashboard.py --quick        # 30 requests a page
    python bench/dashboard.py --database-url postgresql+psycopg://localhost/bench

Prints a Rich table and writes JSON to bench/results/dashboard.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # bench/ is not a package: found through the path set above
    Latency,
    Row,
    compare,
    console,
    cpu_reference,
    environment,
    fmt_ms,
    render,
    write_json,
)
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.domain.enums import UserRole
from threadline.settings import Settings
from threadline.store import inboxes, migrate, tenants
from threadline.store.database import Database
from threadline.web import demo

RESULTS = Path(__file__).resolve().parent / "results" / "dashboard.json"
TARGET_MS = 100.0
PACKAGES = ("threadline", "fastapi", "starlette", "jinja2", "sqlalchemy")
EMAIL, PASSWORD = "admin@example.com", "a bench password, long enough"
NOTES = (
    "Server time in-process: the whole app (middleware, session, queries, templates) through "
    "Starlette's test client, without a network or an HTTP server in front.",
    "Pages take turns in 10 rounds; templates are compiled before the clock starts.",
    f"Target: every page's p95 under {TARGET_MS:.0f} ms.",
)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(db_url: str) -> tuple[TestClient, Database]:
    """A database holding the demo data and a client signed in as its tenant's admin."""
    settings = Settings(
        database_url=db_url, environment="test", log_level="warning", embeddings="none"
    )
    db = Database.from_settings(settings)
    migrate.upgrade(db)
    inboxes.bind(db, settings)
    tenant = tenants.create_tenant(db, "bench")
    tenants.create_user(db, tenant.id, EMAIL, PASSWORD, UserRole.ADMIN)
    demo.load(db, settings, tenant.id)
    client = TestClient(create_app(settings, db, background=()))
    token = _csrf(client.get("/").text)
    r = client.post(
        "/",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client, db


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def pages(client: TestClient) -> dict[str, str]:
    """Every dashboard page on the demo data, by a label for the table."""
    ids = re.findall(r'href="/c/([0-9a-f-]{36})"', client.get("/inbox").text)
    agent = re.search(r'href="(/settings/agents/[0-9a-f-]{36})"', client.get("/settings").text)
    contact = re.search(r'href="(/contacts/[0-9a-f-]{36})"', client.get(f"/c/{ids[0]}").text)
    assert ids and agent and contact, "the demo data did not load"
    found = {"inbox": "/inbox", "inbox, needs reply": "/inbox?status=needs_reply"}
    for i, cid in enumerate(ids, 1):
        found[f"conversation {i}"] = f"/c/{cid}"
    found |= {
        "contact": contact.group(1),
        "analytics": "/analytics",
        "settings": "/settings",
        "new inbox (Twilio)": "/settings/inboxes/new?provider=twilio",
        "agent prompt editor": agent.group(1),
        "search": "/search?q=invoice",
        "search, keyword OR": "/search?q=thanks+OR+quote&mode=keyword",
    }
    return found


def requester(client: TestClient, url: str) -> Callable[[Any], object]:
    def get(_: Any) -> object:
        r = client.get(url)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code}")
        return r

    return get


def rows_of(urls: dict[str, str], lat: dict[str, Latency]) -> list[Row]:
    return [
        Row(
            measure=f"page: {label}",
            size=re.sub(r"[0-9a-f-]{36}", "{id}", urls[label].split("?")[0]),
            threadline=f"{fmt_ms(value.p50)} / {fmt_ms(value.p95)}",
            target=f"p95 < {TARGET_MS:.0f} ms",
            met=value.p95 < TARGET_MS,
            data={"url": urls[label]} | vars(value),
        )
        for label, value in lat.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 requests a page")
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    count = 30 if args.quick else args.requests
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="threadline-bench-") as tmp:
        db_url = args.database_url or f"sqlite:///{Path(tmp) / 'dashboard.db'}"
        loop_before = cpu_reference()
        client, db = signed_in(db_url)
        with client:
            urls = pages(client)
            systems = {label: requester(client, url) for label, url in urls.items()}
            for get in systems.values():
                get(None)  # templates compiled, caches warm
            timings = compare(systems, list(range(count)), rounds=10)
        db.dispose()
        loop_after = cpu_reference()
    wall = time.perf_counter() - started
    lat = {label: Latency.of(t) for label, t in timings.items()}
    rows = rows_of(urls, lat)
    backend = db_url.split(":")[0]
    machine = (
        f"Machine, before / after the run: {os.cpu_count()} CPUs; 1M-iteration Python loop "
        f"{loop_before:.0f} / {loop_after:.0f} ms; "
        f"load average {os.getloadavg()[0]:.1f} at the end."
    )
    render(
        rows,
        title=f"Threadline dashboard on the demo data, {backend}, p50 / p95 over {count} "
        f"requests a page (wall time {wall:.0f} s)",
        notes=(*NOTES, machine),
    )
    slowest = max(lat.items(), key=lambda item: item[1].p95)
    console.print(f"slowest p95: {slowest[0]} {fmt_ms(slowest[1].p95)}")
    write_json(
        args.out,
        {
            "benchmark": "dashboard",
            "command": " ".join(["python", "bench/dashboard.py", *(argv or sys.argv[1:])]),
            "finished_at": datetime.now(UTC).isoformat(),
            "wall_s": wall,
            "backend": backend,
            "requests_per_page": count,
            "notes": NOTES,
            "environment": environment(PACKAGES),
            "machine": {"python_loop_1m_ms": [loop_before, loop_after]},
            "latency_ms": {label: vars(value) for label, value in lat.items()},
        },
        rows,
    )
    console.print(f"wrote {args.out}")
    return 0 if all(row.met for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
