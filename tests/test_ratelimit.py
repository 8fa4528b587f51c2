"""Rate limits: per API key on /v1 and per inbox on /webhooks, 429 with Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import make_tenant
from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the limits live in the app, not in the database


def _client(db_url: str, db: Database, **limits: str) -> TestClient:
    settings = Settings(
        database_url=db_url, environment="test", log_level="warning", embeddings="none", **limits
    )
    return TestClient(create_app(settings, db, background=()), raise_server_exceptions=False)


@pytest.fixture
def limited(db_url: str, db: Database) -> Iterator[TestClient]:
    with _client(db_url, db, rate_limit="3/minute", rate_limit_webhooks="2/minute") as c:
        yield c


def test_an_api_key_over_its_limit_gets_429_with_retry_after(
    limited: TestClient, db: Database
) -> None:
    one, two = make_tenant(db), make_tenant(db)
    for _ in range(3):
        assert limited.get("/v1/conversations", headers=one.headers).status_code == 200
    r = limited.get("/v1/conversations", headers=one.headers)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["X-Request-ID"]
    # writes count too, and nothing is stored
    r = limited.post("/v1/conversations", json={"channel": "api"}, headers=one.headers)
    assert r.status_code == 429
    # another key has its own count
    assert limited.get("/v1/conversations", headers=two.headers).status_code == 200


def test_a_wrong_key_is_throttled_too(limited: TestClient) -> None:
    headers = {"Authorization": "Bearer tl_" + "x" * 40}
    codes = [limited.get("/v1/conversations", headers=headers).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_health_and_the_dashboard_are_not_limited(limited: TestClient) -> None:
    assert {limited.get("/healthz").status_code for _ in range(5)} == {200}


def test_provider_webhooks_are_limited_per_inbox(limited: TestClient) -> None:
    inbox, other = uuid.uuid4(), uuid.uuid4()

    def hook(inbox_id: Any) -> int:
        return limited.post(f"/webhooks/twilio/{inbox_id}/sms", content=b"x=1").status_code

    first = [hook(inbox) for _ in range(2)]
    assert 429 not in first
    r = limited.post(f"/webhooks/twilio/{inbox}/sms", content=b"x=1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert hook(other) != 429


def test_zero_turns_the_limits_off(db_url: str, db: Database) -> None:
    tenant = make_tenant(db)
    with _client(db_url, db, rate_limit="0", rate_limit_webhooks="") as c:
        codes = {c.get("/v1/conversations", headers=tenant.headers).status_code for _ in range(20)}
    assert codes == {200}


def test_the_default_is_generous_and_a_bad_limit_is_refused() -> None:
    from limits import parse_many

    [default] = parse_many(Settings().rate_limit)
    assert default.amount / default.get_expiry() >= 10  # requests per second
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit="lots")
