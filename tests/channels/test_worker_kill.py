"""``threadline worker`` killed with SIGKILL while the provider holds its requests: the next
worker finishes every delivery and the provider still sees exactly one call per message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import make_tenant
from live import threadline_env
from threadline.ingest import Ingest
from threadline.settings import Settings
from threadline.store import Database, conversations, deliveries, inboxes

from .fakes import ProviderAPI, Reply

ACCOUNT = "AC" + "9" * 32
PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
SECRET = "kill-test-secret-key-0123456789abcdef"


class Worker:
    """``python -m threadline worker`` as a real process, its output kept in ``log``."""

    def __init__(self, cwd: Path, **settings: str) -> None:
        self.cwd = cwd
        self.env = threadline_env(**settings)
        self.log = cwd / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "threadline", "worker"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def wait_for(check: Callable[[], bool], what: str, worker: Worker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{worker.log.read_text()}")
        time.sleep(0.05)


def test_kill_9_mid_delivery_never_sends_twice(
    db: Database, db_url: str, tmp_path: Path, provider_api: ProviderAPI
) -> None:
    settings = Settings(database_url=db_url, environment="test", secret_key=SECRET)
    tenant = make_tenant(db)
    view = inboxes.create(
        db,
        settings,
        tenant.tenant_id,
        {
            "provider": "twilio",
            "address": "+14155550199",
            "credentials": {"account_sid": ACCOUNT, "auth_token": "tok"},
            "config": {"api_base_url": provider_api.url},
        },
    )
    conv = conversations.create(
        db,
        tenant.tenant_id,
        {"contact": {"name": "Ada", "phone": "+14155550100"}, "inbox_id": view.id},
    )
    texts = [f"Reminder {i}" for i in range(3)]
    stored = Ingest(db, settings).append(
        tenant.tenant_id,
        conv.id,
        [{"role": "assistant", "content": t} for t in texts],
        send=True,
    )
    ids = [m["id"] for m in stored.messages]
    # The provider takes the requests and sits on them; later, its list shows they arrived.
    for i in range(3):
        provider_api.reply("POST", PATH, Reply(201, {"sid": f"SM{i:032d}"}, delay=60))
    listed = [
        {"sid": f"SM{i:032d}", "body": t, "to": "+14155550100", "from": "+14155550199"}
        for i, t in enumerate(texts)
    ]
    for _ in range(3):
        provider_api.reply("GET", PATH, Reply(200, {"messages": listed}))

    worker = Worker(
        tmp_path,
        database_url=db_url,
        environment="test",
        secret_key=SECRET,
        delivery_lease_seconds="3",
        delivery_poll_seconds="0.1",
        log_level="info",
    )
    worker.start()
    try:
        wait_for(lambda: len(provider_api.requests) == 3, "three sends in flight", worker)
        worker.kill9()
        for message_id in ids:
            row = deliveries.get(db, tenant.tenant_id, message_id)
            assert row is not None and (row["status"], row["attempts"]) == ("pending", 1)

        worker.start()

        def all_sent() -> bool:
            rows = [deliveries.get(db, tenant.tenant_id, m) for m in ids]
            return all(r is not None and r["status"] == "sent" for r in rows)

        wait_for(all_sent, "the restarted worker to settle every delivery", worker)
        assert worker.stop() == 0
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()

    sends = [r for r in provider_api.requests if r.method == "POST"]
    assert sorted(r.form()["Body"][0] for r in sends) == texts  # one call per message
    for message_id in ids:
        row = deliveries.get(db, tenant.tenant_id, message_id)
        assert row is not None
        assert row["attempts"] == 2
    assert sorted(
        deliveries.get(db, tenant.tenant_id, m)["external_message_id"]  # type: ignore[index]
        for m in ids
    ) == [f"SM{i:032d}" for i in range(3)]


def test_worker_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "threadline", "worker"],
        cwd=tmp_path,
        env=threadline_env(database_url=f"sqlite:///{tmp_path / 'empty.db'}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "threadline db upgrade" in result.stderr
