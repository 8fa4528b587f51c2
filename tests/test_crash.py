"""Nothing acknowledged is lost: kill -9 the real server while clients write, restart, count.

The server is ``python -m threadline serve`` in a subprocess on the test's database (SQLite
file or PostgreSQL). A few client threads append messages (and whole batches) over HTTP,
each request with its own ``Idempotency-Key``. Mid-stream the server gets SIGKILL. After a
restart on the same database:

- every message that was answered 2xx is there, with the id and seq it was answered with;
- a batch is there entirely or not at all;
- seqs are exactly 1..N and ``message_count == N``;
- retrying the requests that got no answer, with their keys, stores each exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import make_tenant
from live import LiveServer
from threadline.settings import Settings
from threadline.store import Database, conversations

CLIENTS = 4  # client 0 sends batches, the others single messages
BATCH = 5
KILL_AFTER = 60  # acknowledged requests before the kill
DEADLINE = 20.0  # seconds for the whole ingest before the kill, at most


@dataclass
class Ledger:
    """What the clients were told, shared by their threads."""

    acked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # key -> messages
    in_doubt: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # key -> req
    refused: list[str] = field(default_factory=list)  # non-2xx answers: never expected
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _request(client: int, i: int) -> tuple[str, str, dict[str, Any]]:
    key = f"c{client}-{i}"
    if client == 0:
        items = [{"role": "user", "content": f"{key}#{j}"} for j in range(BATCH)]
        return key, "/batch", {"messages": items}
    role = "user" if (client + i) % 2 else "assistant"
    return key, "", {"role": role, "content": f"{key}#0"}


def _client(
    n: int, server: LiveServer, url: str, token: str, ledger: Ledger, stop: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=10) as http:
        i = 0
        while not stop.is_set():
            key, suffix, body = _request(n, i)
            i += 1
            try:
                r = http.post(url + suffix, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                with ledger.lock:
                    ledger.in_doubt[key] = (suffix, body)
                return  # the server is gone: this client stops here
            with ledger.lock:
                if r.status_code in (200, 201):
                    data = r.json()
                    ledger.acked[key] = data["data"] if suffix else [data]
                else:
                    ledger.refused.append(f"{key}: {r.status_code} {r.text}")


def _read_all(server: LiveServer, token: str, conv_id: str) -> tuple[list[dict[str, Any]], Any]:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.base}/v1/conversations/{conv_id}"
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        r = httpx.get(f"{url}/messages", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["data"]
        if not page["next_cursor"]:
            break
        params = {"limit": 500, "cursor": page["next_cursor"]}
    conv = httpx.get(url, headers=headers)
    assert conv.status_code == 200, conv.text
    return out, conv.json()


def _check_gap_free(stored: list[dict[str, Any]], conv: dict[str, Any]) -> None:
    seqs = [m["seq"] for m in stored]
    assert seqs == list(range(1, len(stored) + 1)), "seqs are not exactly 1..N"
    assert conv["message_count"] == len(stored)


def test_kill_9_loses_no_acknowledged_message(db: Database, db_url: str, tmp_path: Path) -> None:
    tenant = make_tenant(db)
    conv_id = str(conversations.create(db, tenant.tenant_id, {"title": "crash"}).id)
    url = f"/v1/conversations/{conv_id}/messages"
    server = LiveServer(tmp_path, database_url=db_url, log_level="warning")
    ledger = Ledger()
    stop = threading.Event()
    try:
        server.start()
        threads = [
            threading.Thread(target=_client, args=(n, server, url, tenant.token, ledger, stop))
            for n in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + DEADLINE
        while ledger.count() < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ledger.count() > 0, server.stderr
        server.kill9()  # mid-stream: the clients are still sending
        for t in threads:  # each runs until the dead server fails one of its requests
            t.join(timeout=30)
            assert not t.is_alive()

        assert not ledger.refused, ledger.refused
        acked = dict(ledger.acked)
        assert len(ledger.in_doubt) == CLIENTS  # each client's last request got no answer

        server.start()  # same database
        stored, conv = _read_all(server, tenant.token, conv_id)

        # 1. Every acknowledged message survived, as it was answered.
        by_id = {m["id"]: m for m in stored}
        for key, answered in acked.items():
            for m in answered:
                assert m["id"] in by_id, f"acknowledged message {key} ({m['content']}) lost"
                assert by_id[m["id"]]["seq"] == m["seq"]
                assert by_id[m["id"]]["content"] == m["content"]
        # 2. Gap-free and counted, whatever was in flight.
        _check_gap_free(stored, conv)
        # 3. A batch cut off by the kill is all there or not there at all.
        per_key = Counter(m["content"].split("#")[0] for m in stored)
        for key, (suffix, body) in ledger.in_doubt.items():
            size = len(body["messages"]) if suffix else 1
            assert per_key[key] in (0, size), f"{key}: {per_key[key]} of {size} stored"
        # Nothing is stored twice, and nothing nobody sent.
        assert len({m["content"] for m in stored}) == len(stored)
        assert set(per_key) <= set(acked) | set(ledger.in_doubt)

        # 4. Retrying what got no answer, with the same keys, stores each exactly once.
        headers = {"Authorization": f"Bearer {tenant.token}"}
        for key, (suffix, body) in ledger.in_doubt.items():
            r = httpx.post(
                f"{server.base}{url}{suffix}",
                json=body,
                headers=headers | {"Idempotency-Key": key},
            )
            assert r.status_code == (200 if per_key[key] else 201), r.text
        stored, conv = _read_all(server, tenant.token, conv_id)
        _check_gap_free(stored, conv)
        sent = {k: (len(b["messages"]) if s else 1) for k, (s, b) in ledger.in_doubt.items()}
        sent |= {k: len(v) for k, v in acked.items()}
        assert Counter(m["content"].split("#")[0] for m in stored) == Counter(sent)
    finally:
        stop.set()
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_connections_commit_durably(db_url: str) -> None:
    """Every pooled connection runs WAL with synchronous=FULL unless settings say NORMAL."""
    settings = Settings(database_url=db_url, environment="test")
    for synchronous, level in ((settings.sqlite_synchronous, 2), ("NORMAL", 1)):
        db = Database.from_url(db_url, sqlite_synchronous=synchronous)
        try:
            held = [db.engine.connect() for _ in range(3)]  # three distinct connections
            for conn in held:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            for conn in held:
                conn.close()
        finally:
            db.dispose()
