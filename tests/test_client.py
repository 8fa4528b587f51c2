"""The Python SDK against the real app: the sync and async clients run the same scenarios
(on SQLite and PostgreSQL), retries go through a flaky transport in front of the app."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
import pytest

import threadline.client as sdk
from conftest import TenantKey
from threadline.client import (
    AsyncPager,
    AsyncThreadline,
    Pager,
    RetryPolicy,
    Threadline,
)
from threadline.client.testing import (
    ASGIBridge,
    Flaky,
    LocalThreadline,
    async_in_process,
    in_process,
    lifespan,
)

T = TypeVar("T")
KINDS = ["sync", "async"]
NO_WAIT = RetryPolicy(max_retries=2, backoff=0.0, max_backoff=0.0, max_retry_after=0.01)


async def call(result: T | Awaitable[T]) -> T:
    """The result of a client call, sync or async."""
    return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]


async def collect(pager: Pager[T] | AsyncPager[T]) -> list[T]:
    if isinstance(pager, Pager):
        return list(pager)
    return [item async for item in pager]


@asynccontextmanager
async def open_client(
    kind: str, app: Any, key: str, faults: list[Any] | None = None, retries: RetryPolicy = NO_WAIT
) -> AsyncIterator[tuple[Any, Flaky]]:
    """A sync or async client of ``app`` behind a ``Flaky`` transport (no faults by default)."""
    if kind == "sync":
        flaky = Flaky(ASGIBridge(app), faults=list(faults or []))
        with Threadline("http://tl.test", key, transport=flaky, retries=retries) as client:
            yield client, flaky
    else:
        inner = httpx.ASGITransport(app, raise_app_exceptions=False)
        flaky = Flaky(inner, faults=list(faults or []))
        async with (
            lifespan(app),
            AsyncThreadline("http://tl.test", key, transport=flaky, retries=retries) as client,
        ):
            yield client, flaky


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario)


TOOL_CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "check_calendar", "arguments": '{"day": "friday"}'},
    }
]


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_scenario_on_both_clients(kind: str, app: Any, tenant: TenantKey) -> None:
    async def scenario() -> None:
        async with open_client(kind, app, tenant.token) as (tl, _):
            contact = await call(tl.contacts.create(name="Ada", phone="+14155550100"))
            assert contact.name == "Ada" and contact.phone == "+14155550100"
            conv = await call(tl.conversations.create(contact_id=contact.id, title="Remodel"))
            assert (conv.contact_id, conv.status, conv.message_count) == (contact.id, "active", 0)

            first = await call(
                tl.messages.append(conv.id, role="user", content="Hi", external_message_id="SM1")
            )
            replay = await call(
                tl.messages.append(conv.id, role="user", content="Hi", external_message_id="SM1")
            )
            assert (replay.id, replay.seq) == (first.id, first.seq) == (first.id, 1)
            call_msg = await call(
                tl.messages.append(conv.id, role="assistant", tool_calls=TOOL_CALLS)
            )
            assert call_msg.tool_calls == TOOL_CALLS and call_msg.content is None
            batch = await call(
                tl.messages.batch(
                    conv.id,
                    [
                        {
                            "role": "tool",
                            "tool_call_id": "call_1",
                            "content": '{"free": ["10:00"]}',
                        },
                        {"role": "assistant", "content": "Friday at 10?"},
                        {"role": "user", "content": "Perfect"},
                    ],
                )
            )
            assert [m.seq for m in batch] == [3, 4, 5]

            # Pages of two, followed to the end by the iterator.
            messages = await collect(tl.messages.list(conv.id, limit=2))
            assert [m.seq for m in messages] == [1, 2, 3, 4, 5]
            assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
            latest = await call(tl.messages.list(conv.id, latest=True, limit=2).first_page())
            assert [m.seq for m in latest.data] == [4, 5] and latest.next_cursor

            got = await call(tl.conversations.get(conv.id, include=["messages", "events"]))
            assert got.message_count == 5 and got.messages and len(got.messages) == 5
            assert got.events and got.events[0].type == "created"
            listed = await collect(tl.conversations.list(contact_id=contact.id, limit=1))
            assert [c.id for c in listed] == [conv.id]

            context = await call(tl.conversations.context(conv.id, format="openai"))
            assert context.format == "openai"
            assert context.messages[-1] == {"role": "user", "content": "Perfect"}
            assert context.messages[1]["tool_calls"] == TOOL_CALLS

            archived = await call(tl.conversations.update(conv.id, status="archived"))
            assert archived.status == "archived"
            with pytest.raises(sdk.InvalidTransition) as refused:
                await call(tl.conversations.update(conv.id, status="waiting"))
            err = refused.value
            assert (err.status, err.code) == (409, "invalid_transition")
            assert isinstance(err, sdk.Conflict) and err.request_id
            events = await collect(tl.conversations.events(conv.id, limit=1))
            assert [e.type for e in events][-1] == "status_changed"

            renamed = await call(tl.contacts.update(contact.id, name="Ada King"))
            assert (renamed.name, renamed.phone) == ("Ada King", "+14155550100")
            cleared = await call(tl.contacts.update(contact.id, phone=None))
            assert (cleared.name, cleared.phone) == ("Ada King", None)
            assert [c.id for c in await collect(tl.contacts.list())] == [contact.id]

    run(scenario)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", KINDS)
def test_errors_carry_code_message_details_status_and_request_id(
    kind: str, app: Any, tenant: TenantKey
) -> None:
    async def scenario() -> None:
        async with open_client(kind, app, tenant.token) as (tl, _):
            missing = "019a0000-0000-7000-8000-000000000000"
            with pytest.raises(sdk.NotFound) as nf:
                await call(tl.conversations.get(missing))
            assert (nf.value.status, nf.value.code) == (404, "not_found")
            assert not isinstance(nf.value, sdk.EndpointNotFound)
            assert nf.value.request_id and "not found" in nf.value.message

            conv = await call(tl.conversations.create(contact={"name": "Bo"}))
            with pytest.raises(sdk.ValidationError) as bad:
                await call(tl.messages.append(conv.id, role="robot", content="beep"))
            assert bad.value.status == 422 and isinstance(bad.value.details, list)
            assert str(bad.value).startswith("422 validation_error")

            await call(tl.messages.append(conv.id, role="user", content="a", idempotency_key="k1"))
            with pytest.raises(sdk.IdempotencyKeyReused):
                await call(
                    tl.messages.append(conv.id, role="user", content="b", idempotency_key="k1")
                )
            await call(tl.contacts.create(email="bo@example.com"))
            with pytest.raises(sdk.AlreadyExists):
                await call(tl.contacts.create(email="bo@example.com"))
            with pytest.raises(sdk.EndpointNotFound):
                await call(tl.request("GET", "/v1/no-such-thing"))

        async with open_client(kind, app, "tl_wrong") as (anonymous, _):
            with pytest.raises(sdk.Unauthenticated) as denied:
                await collect(anonymous.conversations.list())
            assert denied.value.status == 401

    run(scenario)


def _message_count(app: Any, key: str, conversation_id: str) -> int:
    with in_process(app, key) as tl:
        return len(list(tl.messages.list(conversation_id)))


@pytest.mark.parametrize("kind", KINDS)
def test_a_retried_append_is_stored_once(kind: str, app: Any, tenant: TenantKey) -> None:
    """The server stores the message but its answer is lost, twice: the third try answers the
    original (200, a replay) because every try sent the same Idempotency-Key."""
    state: dict[str, Any] = {}

    async def scenario() -> None:
        async with open_client(kind, app, tenant.token) as (tl, flaky):
            conv = await call(tl.conversations.create(contact={"name": "Ada"}))
            flaky.faults[:] = ["drop", "drop"]
            flaky.requests.clear()
            message = await call(tl.messages.append(conv.id, role="user", content="only once"))
            keys = {r.headers["Idempotency-Key"] for r in flaky.requests}
            assert len(flaky.requests) == 3 and len(keys) == 1
            assert message.seq == 1

            flaky.faults[:] = ["drop"]
            flaky.requests.clear()
            batch = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
            stored = await call(tl.messages.batch(conv.id, batch, idempotency_key="import-7"))
            assert [m.seq for m in stored] == [2, 3]
            assert [r.headers["Idempotency-Key"] for r in flaky.requests] == ["import-7"] * 2
            state["conv"] = conv.id

    run(scenario)
    assert _message_count(app, tenant.token, state["conv"]) == 3


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", KINDS)
def test_retry_rules(kind: str, app: Any, tenant: TenantKey) -> None:
    async def scenario() -> None:
        slow = RetryPolicy(max_retries=2, backoff=0.0, max_retry_after=5)
        async with open_client(kind, app, tenant.token, retries=slow) as (tl, flaky):
            # 503 and 429 did nothing: retried after Retry-After, whatever the method.
            flaky.faults[:] = [503, 429]
            flaky.retry_after = "0.2"
            started = time.monotonic()
            contact = await call(tl.contacts.create(name="Retried"))
            assert time.monotonic() - started >= 0.4
            assert len(flaky.requests) == 3
            flaky.retry_after = "0"

            # A refused connection never reached the server: retried even for a plain POST.
            flaky.faults[:] = ["connect"]
            await call(tl.contacts.create(name="Second"))

            # A lost answer to a POST without an idempotency key is not retried: the caller
            # learns it may have been stored.
            flaky.faults[:] = ["drop"]
            with pytest.raises(sdk.ConnectionFailed):
                await call(tl.contacts.create(name="Maybe"))
            names = sorted(c.name for c in await collect(tl.contacts.list()))
            assert names == ["Maybe", "Retried", "Second"]

            # A GET is retried after a lost answer.
            flaky.faults[:] = ["drop"]
            assert (await call(tl.contacts.get(contact.id))).name == "Retried"

            # Out of retries: the last answer's error, with its Retry-After.
            flaky.faults[:] = [503, 503, 503]
            with pytest.raises(sdk.DatabaseBusy) as busy:
                await call(tl.contacts.get(contact.id))
            assert busy.value.retry_after == 0 and isinstance(busy.value, sdk.Unavailable)

    run(scenario)


def test_errors_are_chosen_by_code_then_status() -> None:
    from threadline.client._private.errors import from_response

    def answer(status: int, code: str | None, headers: dict[str, str] | None = None) -> Any:
        body = {"error": {"code": code, "message": "m", "details": {"a": 1}}} if code else None
        request = httpx.Request("GET", "http://x/v1/y")
        return from_response(
            httpx.Response(status, json=body, headers=headers or {}, request=request)
        )

    assert type(answer(409, "invalid_transition")) is sdk.InvalidTransition
    assert type(answer(409, "model_not_configured")) is sdk.ModelNotConfigured
    assert type(answer(409, "something_new")) is sdk.Conflict
    assert type(answer(400, "invalid_cursor")) is sdk.InvalidCursor
    assert type(answer(413, "payload_too_large")) is sdk.PayloadTooLarge
    assert type(answer(415, "unsupported_media_type")) is sdk.UnsupportedMediaType
    assert type(answer(503, "database_read_only")) is sdk.DatabaseReadOnly
    assert type(answer(503, "migration_required")) is sdk.MigrationRequired
    assert type(answer(502, None)) is sdk.InternalServerError
    assert type(answer(405, "method_not_allowed")) is sdk.EndpointNotFound
    limited = answer(429, "rate_limited", {"Retry-After": "7", "X-Request-ID": "r1"})
    assert isinstance(limited, sdk.RateLimited)
    assert (limited.retry_after, limited.request_id, limited.details) == (7.0, "r1", {"a": 1})
    dated = answer(503, "database_busy", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert dated.retry_after == 0.0  # a date in the past: retry now


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_URL", "http://example.test:9000/")
    monkeypatch.setenv("THREADLINE_API_KEY", "tl_env")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    with Threadline(transport=httpx.MockTransport(handler)) as tl:
        assert list(tl.conversations.list(status="waiting", limit=5)) == []
    assert str(seen[0].url) == "http://example.test:9000/v1/conversations?status=waiting&limit=5"
    assert seen[0].headers["Authorization"] == "Bearer tl_env"
    with Threadline("http://other.test", "tl_arg", transport=httpx.MockTransport(handler)) as tl:
        assert tl.base_url == "http://other.test" and tl.api_key == "tl_arg"


def test_local_threadline_serves_both_clients() -> None:
    with LocalThreadline() as local:
        with local.client() as tl:
            conv = tl.conversations.create(contact={"name": "Ada"})
            tl.messages.append(conv.id, role="user", content="Hi")

        async def read() -> list[str | None]:
            async with local.async_client() as atl:
                return [m.content async for m in atl.messages.list(conv.id)]

        assert anyio.run(read) == ["Hi"]
        folder = local.folder
    assert not folder.exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_in_process_helpers(app: Any, tenant: TenantKey) -> None:
    with in_process(app, tenant.token) as tl:
        conv = tl.conversations.create(contact={"name": "Ada"})

    async def scenario() -> None:
        async with async_in_process(app, tenant.token) as atl:
            assert (await atl.conversations.get(conv.id)).id == conv.id

    run(scenario)


# -- the public surface ------------------------------------------------------------------


def test_public_names_are_one_sorted_list() -> None:
    assert sdk.__all__ == sorted(sdk.__all__)
    public = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_") and not inspect.ismodule(value)  # testing, once imported
    }
    assert public == set(sdk.__all__)
    for name in sdk.__all__:  # every class is the SDK's own, none the server's
        value = getattr(sdk, name)
        if inspect.isclass(value):
            assert value.__module__.startswith("threadline.client._private."), name


def test_the_package_is_typed() -> None:
    from importlib.resources import files

    assert files("threadline.client").joinpath("py.typed").is_file()


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in ("__init__",)
    }


def _same(sync: inspect.Signature, other: inspect.Signature) -> bool:
    def shape(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    def returns(sig: inspect.Signature) -> str:
        text = str(sig.return_annotation)
        return text.replace("AsyncPager[", "Pager[").replace("AsyncThreadline", "Threadline")

    return shape(sync) == shape(other) and returns(sync) == returns(other)


def test_the_async_client_is_the_twin_of_the_sync_one() -> None:
    sync_client = Threadline("http://x", "k")
    async_client = AsyncThreadline("http://x", "k")
    pairs = [(Threadline, AsyncThreadline)] + [
        (type(getattr(sync_client, name)), type(getattr(async_client, name)))
        for name in ("contacts", "conversations", "messages", "suggestions", "inboxes", "agents")
    ]
    for sync_cls, async_cls in pairs:
        sync_methods, async_methods = _methods(sync_cls), _methods(async_cls)
        sync_methods.pop("close", None), async_methods.pop("close", None)
        assert sync_methods.keys() == async_methods.keys(), sync_cls
        for name, signature in sync_methods.items():
            if name == "__init__":
                continue  # the transport's type differs
            assert _same(signature, async_methods[name]), f"{sync_cls.__name__}.{name}"
            is_pager = "Pager[" in str(signature.return_annotation)
            assert inspect.iscoroutinefunction(getattr(async_cls, name)) is not is_pager, name
    sync_client.close()


def _server_schemas() -> list[tuple[type, type]]:
    """(server schema, SDK model) for every answer schema this server has."""
    import importlib

    wanted = {
        "contacts": [("ContactRead", sdk.Contact)],
        "conversations": [("ConversationDetail", sdk.Conversation), ("EventRead", sdk.Event)],
        "messages": [("MessageRead", sdk.Message)],
        "agents": [
            ("AgentRead", sdk.Agent),
            ("ContextRead", sdk.Context),
            ("SuggestionRead", sdk.Suggestion),
        ],
        "search": [("SearchHit", sdk.SearchHit), ("SearchResults", sdk.SearchResults)],
        "inboxes": [("InboxRead", sdk.Inbox)],
    }
    pairs = []
    for module_name, models in wanted.items():
        try:
            module = importlib.import_module(f"threadline.schemas.{module_name}")
        except ImportError:  # not on this server yet
            continue
        pairs += [(getattr(module, name), model) for name, model in models]
    return pairs


@pytest.mark.parametrize(
    ("server", "model"), _server_schemas(), ids=lambda c: getattr(c, "__name__", "")
)
def test_every_field_the_server_answers_is_on_the_sdk_model(server: Any, model: Any) -> None:
    def names(schema: Any) -> set[str]:
        return {f.serialization_alias or f.alias or n for n, f in schema.model_fields.items()}

    assert names(server) <= set(model.model_fields), names(server) - set(model.model_fields)


def test_models_keep_fields_a_newer_server_adds() -> None:
    contact = sdk.Contact.model_validate(
        {
            "id": "c1",
            "attributes": {},
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "loyalty_tier": "gold",
        }
    )
    assert contact.model_extra == {"loyalty_tier": "gold"}
