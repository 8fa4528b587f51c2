"""Property-based fuzzing of the whole ``/v1`` API with Schemathesis, on both backends.

Schemathesis reads the app's own OpenAPI document and sends valid and invalid requests to
every ``/v1`` operation (its examples, coverage and fuzzing phases). Whatever it sends, the
API must answer without a 5xx, with a documented status code and a body in the documented
shape (Schemathesis' default checks plus ``not_a_server_error``).

To reach past the 404 and 422 branches into the store:

- every case is authenticated with the fuzzing tenant's real key, declared to Schemathesis
  as the API's bearer auth;
- two of three generated path ids are swapped for that tenant's real contact and
  conversation (DELETE gets a fresh contact each time, so the shared one survives);
- schema-valid bodies are nudged past the rules JSON Schema cannot state (a phone number
  that exists, a tool message with its ``tool_call_id``, ``arguments`` holding JSON, a real
  parent message, an ``Idempotency-Key`` per body ...). A third keep the NUL characters
  Hypothesis puts in strings, which PostgreSQL cannot store: those must answer 422.

Every choice is a function of the generated data and Hypothesis runs derandomized, so a run
is reproducible. One database per backend serves the whole module: rows that earlier
examples stored make later ones more interesting.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error

from conftest import BACKENDS, create_pg_database, make_tenant
from threadline.api.app import create_app
from threadline.settings import Settings
from threadline.store import Database, migrate, tenants
from threadline.store.models import ApiKey

_CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # Schema-valid input may still break a rule JSON Schema cannot state (a phone number
            # that does not exist, tool_calls on a user message, a cursor we never issued, a
            # transition the state machine forbids): 400, 409 and 422 by contract.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "404", "409", "422"]
            },
            # Replays every request without and with a wrong key: a third of the run time.
            # test_tenancy.py checks every /v1 operation for 401 instead, once each.
            "ignored_auth": {"enabled": False},
        },
    }
)

# Generation needs only the OpenAPI document, read from an app whose database is never
# opened; requests go to the ``target`` fixture's app, which has a real database.
_NEVER_OPENED = f"sqlite:///{Path(tempfile.gettempdir()) / 'threadline-never-opened.db'}"
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(Settings(database_url=_NEVER_OPENED, environment="test", log_level="warning")),
    config=_CONFIG,
).include(path_regex="^/v1/")

#: The fuzzing tenant's API key: fixed, so that Schemathesis can be given it at import time;
#: the ``target`` fixture stores its hash in each backend's database.
FUZZ_KEY = "tl_schemathesis-fuzzing-key-000000000000000000"


@schema.auth(refresh_interval=None)
class _TenantKey:
    """Authenticates every generated case as the fuzzing tenant."""

    def get(self, case: Any, context: Any) -> str:
        return FUZZ_KEY

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@dataclass
class Target:
    """The app under test and real ids of the fuzzing tenant to aim requests at."""

    app: Any
    client: TestClient
    ids: dict[str, str]

    def fresh_contact(self, seed: int) -> str:
        """A new contact with a conversation and a message: something for DELETE to remove."""
        phone = f"+1415666{seed % 10000:04d}"
        conv = self.client.post("/v1/conversations", json={"contact": {"phone": phone}})
        assert conv.status_code == 201, conv.text
        r = self.client.post(
            f"/v1/conversations/{conv.json()['id']}/messages", json={"role": "user", "content": "x"}
        )
        assert r.status_code in (200, 201), r.text
        return str(conv.json()["contact_id"])


@pytest.fixture(scope="module", params=BACKENDS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("fuzz") / "threadline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        pg_url: sa.URL = create_pg_database(request.getfixturevalue("pg_base_url"))
        url = pg_url.render_as_string(hide_password=False)
    db = Database.from_url(url, sqlite_synchronous="NORMAL")  # durability is not under test
    if request.param != "sqlite":
        migrate.upgrade(db)
    settings = Settings(database_url=url, environment="test", log_level="warning")
    app = create_app(settings, db, background=())  # nothing runs behind the fuzzer's back
    tenant = make_tenant(db)
    with db.write() as s:
        s.add(
            ApiKey(
                tenant_id=tenant.tenant_id,
                name="fuzz",
                prefix=FUZZ_KEY[:10],
                key_hash=tenants.hash_key(FUZZ_KEY),
            )
        )
    auth = {"Authorization": f"Bearer {FUZZ_KEY}"}
    with TestClient(app, headers=auth, raise_server_exceptions=False) as client:
        contact = client.post("/v1/contacts", json={"name": "Ada", "phone": "+14155550100"})
        assert contact.status_code == 201, contact.text
        conv = client.post("/v1/conversations", json={"contact_id": contact.json()["id"]})
        assert conv.status_code == 201, conv.text
        cid = conv.json()["id"]
        r = client.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "hi"})
        assert r.status_code == 201, r.text
        ids = {
            "contact_id": contact.json()["id"],
            "conversation_id": cid,
            "message_id": r.json()["id"],
        }
        yield Target(app, client, ids)
    db.dispose()


def _seed(value: Any) -> int:
    return zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode())


def _aim(case: Any, target: Target) -> None:
    """Swap two of three generated path ids for real ones (a fresh contact for DELETE)."""
    params = case.path_parameters or {}
    for name, value in params.items():
        seed = _seed(value)
        if name not in target.ids or not seed % 3:
            continue
        if case.method.upper() == "DELETE" and name == "contact_id":
            params[name] = target.fresh_contact(seed)
        else:
            params[name] = target.ids[name]


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _fix_contact(contact: dict[str, Any], seed: int) -> None:
    if isinstance(contact.get("phone"), str):
        contact["phone"] = f"+1415555{seed % 10000:04d}"


def _fix_message(message: dict[str, Any], seed: int, ids: dict[str, str]) -> None:
    if isinstance(message.get("external_message_id"), str) and seed % 3:
        # Mostly new messages; the rest replay what an earlier example stored.
        message["external_message_id"] = f"{message['external_message_id'][:200]}-{seed}"
    if message.get("parent_message_id") and seed % 3:
        message["parent_message_id"] = ids["message_id"]
    role = message.get("role")
    if role != "assistant":
        message.pop("tool_calls", None)
    if role == "tool" and not message.get("tool_call_id"):
        message["tool_call_id"] = "call_1"
    if role != "tool":
        message.pop("tool_call_id", None)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            try:
                json.loads(function["arguments"])
            except ValueError:
                function["arguments"] = json.dumps({"text": function["arguments"]})
    when = message.get("occurred_at")
    if isinstance(when, str) and not "1970" <= when[:4] < "2200":
        message.pop("occurred_at")


def _repair(case: Any, target: Target) -> None:
    """Make a schema-valid body also satisfy the rules the schema cannot express.

    Only positive cases are touched; invalid ones stay as generated. Schemathesis revalidates
    an edited case, so its checks judge the request really sent.
    """
    meta = case.meta
    body = case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return
    seed = _seed(body)
    if seed % 3:  # a third keep their NULs: PostgreSQL cannot store them, they must be 422
        body = _without_nul(body)
    path = case.operation.path
    if path in ("/v1/contacts", "/v1/contacts/{contact_id}"):
        _fix_contact(body, seed)
    elif path == "/v1/conversations":
        if "contact_id" in body and "contact" in body:  # one or the other, not both
            body.pop("contact" if seed % 2 else "contact_id")
        if isinstance(body.get("contact"), dict):
            _fix_contact(body["contact"], seed)
        if seed % 3 and "contact_id" in body:
            body["contact_id"] = target.ids["contact_id"]
        if seed % 4:
            body.pop("inbox_id", None)  # no inboxes exist yet: always 404
    elif path.endswith("/messages"):
        _fix_message(body, seed, target.ids)
    elif path.endswith("/messages/batch"):
        for i, message in enumerate(body.get("messages") or []):
            if isinstance(message, dict):
                _fix_message(message, seed + i, target.ids)
    if seed % 4:
        body.pop("assignee_id", None)  # no agents exist yet: always 404
    case.body = body
    headers = case.headers or {}
    if isinstance(headers.get("Idempotency-Key"), str):
        # A key per body: the same body again is a true replay, not a key reused.
        case.headers = {**headers, "Idempotency-Key": f"{headers['Idempotency-Key'][:200]}-{seed}"}


@schema.parametrize()
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    # One app and database serve every example, on purpose: state carries over.
    suppress_health_check=[
        hypothesis.HealthCheck.function_scoped_fixture,
        hypothesis.HealthCheck.too_slow,
    ],
)
def test_no_input_gets_a_server_error(case: Any, target: Target) -> None:
    _aim(case, target)
    _repair(case, target)
    response = case.call_and_validate(app=target.app, additional_checks=[not_a_server_error])
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("url", "query"), [("/v1/analytics/agents", {}), ("/v1/search", {"q": "hi"})]
)
def test_time_filters_take_only_iso_8601(url: str, query: dict[str, str], target: Target) -> None:
    """A number is not read as a Unix time: the document says date-time, so it is a 422."""
    for value in ("0.5", "1700000000", "-1", "2025-01-31"):
        for name in ("since", "until"):
            r = target.client.get(url, params={**query, name: value})
            assert r.status_code == 422, (name, value, r.text)
            assert r.json()["error"]["code"] == "validation_error"
    period = {"since": "2025-01-31T09:00:00Z", "until": "2200-01-01T00:00:00+00:00"}
    r = target.client.get(url, params={**query, **period})
    assert r.status_code == 200, r.text
