"""Operations: liveness, readiness, Prometheus metrics and logs that keep secrets out."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import TenantKey, make_tenant
from live import LiveServer
from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database, migrate

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


# --- health and readiness --------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_readyz_when_migrated(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "revision": migrate.head()}


@contextmanager
def _app_on(url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=url, environment="test", log_level="warning")
    db = Database.from_url(url)
    try:
        with TestClient(create_app(settings, db), raise_server_exceptions=False) as c:
            yield c
    finally:
        db.dispose()


def test_readyz_is_503_on_an_empty_database(empty_db_url: str) -> None:
    with _app_on(empty_db_url) as c:
        assert c.get("/healthz").status_code == 200  # alive, just not ready
        r = c.get("/readyz")
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "migration_required"
        assert "threadline db upgrade" in err["message"]
        assert err["details"]["revision"] is None
        assert err["details"]["head"] == migrate.head()


def test_readyz_is_503_when_the_schema_is_behind(empty_db_url: str) -> None:
    db = Database.from_url(empty_db_url)
    migrate.upgrade(db)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    db.dispose()
    with _app_on(empty_db_url) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["details"]["revision"] == "0000"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket closes
    urls = [
        f"sqlite:///{tmp_path}/no/such/folder/x.db",
        f"postgresql+psycopg://nobody:pw@127.0.0.1:{closed}/nothing",
    ]
    for url in urls:
        with _app_on(url) as c:
            r = c.get("/readyz")
            assert r.status_code == 503, (url, r.text)
            assert r.json()["error"]["message"] == "the database is not reachable"
            assert "pw" not in r.text
            assert c.get("/healthz").status_code == 200


# --- metrics -----------------------------------------------------------------------------------


def _metrics(
    client: TestClient,
) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return r.text, samples


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_and_latency_per_route_template(
    api: TestClient, client: TestClient, conversation: dict[str, Any]
) -> None:
    cid = conversation["id"]
    for _ in range(3):
        assert api.get(f"/v1/conversations/{cid}").status_code == 200
    assert api.get(f"/v1/conversations/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/v1/conversations/{cid}/messages").status_code == 200
    assert api.get("/no/such/page/12345").status_code == 404

    text, samples = _metrics(client)
    route = "/v1/conversations/{conversation_id}"
    count = "threadline_http_requests_total"
    assert _value(samples, count, method="GET", route=route, status="200") == 3
    assert _value(samples, count, method="GET", route=route, status="404") == 1
    assert _value(samples, count, method="POST", route="/v1/conversations", status="201") == 1
    messages_route = "/v1/conversations/{conversation_id}/messages"
    assert _value(samples, count, method="GET", route=messages_route, status="200") == 1
    assert _value(samples, count, method="GET", route="unmatched", status="404") == 1
    hist = "threadline_http_request_duration_seconds"
    assert _value(samples, f"{hist}_count", method="GET", route=route) == 4
    assert _value(samples, f"{hist}_sum", method="GET", route=route) > 0
    assert _value(samples, f"{hist}_bucket", method="GET", route=route, le="+Inf") == 4

    # no raw ids or paths in any label: bounded cardinality, nothing personal
    assert not UUID.search(text)
    assert "12345" not in text


@pytest.mark.parametrize("backend", ["sqlite"])  # labels do not depend on the database
def test_route_labels_are_templates_whatever_the_id(api: TestClient, client: TestClient) -> None:
    # ids that also occur in the route's own text ("/v1/contacts/...") must not bend the label
    raws = ["1", "v1", "contacts", "o"]
    for raw in raws:
        assert api.get(f"/v1/contacts/{raw}").status_code == 422
    _, samples = _metrics(client)
    routes = {
        dict(labels)["route"] for (name, labels) in samples if name.startswith("threadline_http")
    }
    assert routes == {"/v1/contacts/{contact_id}"}, routes


def test_messages_stored_per_channel(api: TestClient, client: TestClient) -> None:
    name = "threadline_messages_stored_total"
    _, before = _metrics(client)
    assert _value(before, name, channel="api") == 0

    api_conv = api.post("/v1/conversations", json={}).json()["id"]
    sms_conv = api.post("/v1/conversations", json={"channel": "sms"}).json()["id"]
    one = {"role": "user", "content": "hello", "external_message_id": "m-1"}
    assert api.post(f"/v1/conversations/{api_conv}/messages", json=one).status_code == 201
    batch = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(3)]}
    r = api.post(f"/v1/conversations/{sms_conv}/messages/batch", json=batch)
    assert r.status_code == 201
    _, after = _metrics(client)
    assert _value(after, name, channel="api") == 1
    assert _value(after, name, channel="sms") == 3

    # a replay stores nothing and counts nothing; neither does a rejected message
    assert api.post(f"/v1/conversations/{api_conv}/messages", json=one).status_code == 200
    bad = {"role": "tool", "content": "no call id"}
    assert api.post(f"/v1/conversations/{api_conv}/messages", json=bad).status_code == 422
    _, final = _metrics(client)
    assert _value(final, name, channel="api") == 1
    assert _value(final, name, channel="sms") == 3


def test_metrics_belong_to_their_app(settings: Settings, db: Database, tenant: TenantKey) -> None:
    first, second = create_app(settings, db), create_app(settings, db)
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/healthz")
        _, samples = _metrics(b)
    assert _value(samples, "threadline_http_requests_total", method="GET", route="/healthz",
                  status="200") == 0  # fmt: skip


# --- logs ---------------------------------------------------------------------------------------


def _exercise(base: str, key: str, body: str) -> None:
    """Requests that carry a message body and an API key in every way a client sends them."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=auth) as http:
        conv = http.post("/v1/conversations", json={"contact": {"phone": "+14155550100"}})
        assert conv.status_code == 201, conv.text
        cid = conv.json()["id"]
        r = http.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": body})
        assert r.status_code == 201, r.text
        # a body that fails validation is echoed nowhere either
        r = http.post(f"/v1/conversations/{cid}/messages", json={"role": "robot", "content": body})
        assert r.status_code == 422
        assert body not in r.text
        # a conflict and an unknown id
        r = http.post("/v1/contacts", json={"phone": "+14155550100", "name": body})
        assert r.status_code == 409
        assert http.get(f"/v1/conversations/{uuid.uuid4()}").status_code == 404
        # a body in the query string and a key in the wrong place
        assert http.get("/v1/conversations", params={"status": body}).status_code == 422
        assert http.get(f"/v1/conversations/{cid}/messages").status_code == 200
    bad = httpx.get(f"{base}/v1/conversations", headers={"Authorization": f"Bearer {key}x"})
    assert bad.status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
def test_json_logs_never_contain_bodies_keys_or_secrets(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    key = make_tenant(db).token  # created apart from the server: no first-start banner
    body = f"my card is 4111-{uuid.uuid4().hex}"
    secret = f"s3cret-{uuid.uuid4().hex}"
    with LiveServer(
        tmp_path, database_url=db_url, log_format="json", secret_key=secret, log_level="debug"
    ) as server:
        _exercise(server.base, key, body)
    out, err = server.stdout, server.stderr

    for text in (out, err):
        assert body not in text
        assert body.rsplit("-", 1)[1] not in text  # not even truncated or re-encoded
        assert key not in text
        assert key[3:20] not in text
        assert secret not in text

    lines = [line for line in err.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(e, dict) and "event" in e and "timestamp" in e for e in events)
    # the server's own records (uvicorn) are kept, and are JSON like ours
    assert any(e.get("logger", "").startswith("uvicorn") for e in events), err
    assert any("Uvicorn running on" in e["event"] for e in events), err
    requests = [e for e in events if e["event"] == "request"]
    stored = [
        e for e in requests
        if e["route"] == "/v1/conversations/{conversation_id}/messages" and e["status"] == 201
    ]  # fmt: skip
    assert len(stored) == 1
    assert {"method", "route", "status", "ms", "level"} <= set(stored[0])
    assert any(e["status"] == 401 for e in requests)
    assert not any(UUID.search(e["route"]) for e in requests)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_console_logs_by_default(db: Database, db_url: str, tmp_path: Path) -> None:
    key = make_tenant(db).token
    body = f"console body {uuid.uuid4().hex}"
    with LiveServer(tmp_path, database_url=db_url) as server:
        _exercise(server.base, key, body)
    out, err = server.stdout, server.stderr
    assert body not in out + err
    assert key not in out + err
    request_lines = [line for line in err.splitlines() if " request " in f" {line} "]
    assert request_lines, err
    assert any(
        "route=/v1/conversations/{conversation_id}/messages" in line for line in request_lines
    )
    for line in request_lines:
        assert not line.lstrip().startswith("{")  # readable lines, not JSON


def test_api_on_an_unmigrated_database_answers_503_not_500(empty_db_url: str) -> None:
    db = Database.from_url(empty_db_url)
    try:
        app = create_app(Settings(database_url=empty_db_url, log_level="error"), db)
        with TestClient(app, raise_server_exceptions=False) as c:
            # A well-formed key: one of the wrong shape is refused without asking the database.
            r = c.get("/v1/conversations", headers={"Authorization": f"Bearer tl_{'x' * 43}"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "database_unavailable"
        assert "threadline db upgrade" in r.json()["error"]["message"]
    finally:
        db.dispose()
