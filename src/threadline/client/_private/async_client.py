"""``AsyncThreadline``: the asynchronous twin of ``sync_client.py``, method for method (a test
holds them to the same signatures); change both together."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import anyio
import httpx

from threadline.client._private import base
from threadline.client._private.base import NOT_GIVEN, NotGiven, RetryPolicy
from threadline.client._private.models import (
    Agent,
    Contact,
    Context,
    Conversation,
    Event,
    Inbox,
    Message,
    Page,
    SearchResults,
    Suggestion,
)
from threadline.client._private.pagination import AsyncPager
from threadline.client._private.types import ID, MessageInput, SearchMode

T = TypeVar("T")


class AsyncThreadline:
    """A client of one Threadline server, as one tenant (its API key).

    ``base_url`` and ``api_key`` default to ``THREADLINE_URL`` and ``THREADLINE_API_KEY``.
    Requests the server did not act on (429, 503, a refused connection) are retried
    ``retries`` times with backoff, honouring Retry-After; see ``RetryPolicy``. Use it as a
    context manager, or call ``close()``, to release its connections.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = base.DEFAULT_TIMEOUT,
        retries: int | RetryPolicy = base.DEFAULT_RETRIES,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, self.api_key = base.resolve(base_url, api_key)
        self.retries = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=base.headers(self.api_key, headers),
            timeout=timeout,
            transport=transport,
        )
        self.contacts = AsyncContacts(self)
        self.conversations = AsyncConversations(self)
        self.messages = AsyncMessages(self)
        self.suggestions = AsyncSuggestions(self)
        self.inboxes = AsyncInboxes(self)
        self.agents = AsyncAgents(self)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send one request (retried per the policy); an error answer raises its ``APIError``.

        Any endpoint can be called this way, including ones this SDK has no method for yet.
        """
        method = method.upper()
        sent_headers = base.request_headers(idempotency_key)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, headers=sent_headers
                )
            except httpx.TransportError as exc:
                if attempt < self.retries.max_retries and base.retryable_transport(
                    method, exc, bool(idempotency_key)
                ):
                    await anyio.sleep(self.retries.delay(attempt))
                    attempt += 1
                    continue
                raise base.connection_failed(exc, self.base_url) from exc
            if attempt < self.retries.max_retries and base.retryable_status(
                method, response.status_code, bool(idempotency_key)
            ):
                await response.aread()
                await anyio.sleep(self.retries.delay(attempt, base.errors.retry_after(response)))
                attempt += 1
                continue
            return base.check(response)

    async def _get(self, model: type[T], path: str, /, **query: Any) -> T:
        return base.parse(model, await self.request("GET", path, params=base.params(**query)))

    async def _send(
        self, model: type[T], method: str, path: str, json: Any = None, key: str | None = None
    ) -> T:
        return base.parse(model, await self.request(method, path, json=json, idempotency_key=key))

    def _pager(self, model: type[T], path: str, /, **query: Any) -> AsyncPager[T]:
        async def fetch(cursor: str | None) -> Page[T]:
            return await self._get(Page[model], path, **query, cursor=cursor)  # type: ignore[valid-type]

        return AsyncPager(fetch)

    async def search(
        self,
        q: str,
        *,
        mode: SearchMode | None = None,
        contact_id: ID | None = None,
        channel: str | None = None,
        inbox_id: ID | None = None,
        role: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> SearchResults:
        """Messages matching ``q`` by words (keyword), meaning (semantic) or both (hybrid),
        best first; ``mode`` on the answer is the mode that ran."""
        return await self._get(
            SearchResults,
            "/v1/search",
            q=q,
            mode=mode,
            contact_id=contact_id,
            channel=channel,
            inbox_id=inbox_id,
            role=role,
            since=since,
            until=until,
            limit=limit,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncThreadline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Resource:
    def __init__(self, client: AsyncThreadline) -> None:
        self._c = client


class AsyncContacts(_Resource):
    async def create(
        self,
        *,
        name: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Contact:
        """Create a contact; a phone or email another contact has raises ``AlreadyExists``."""
        json = base.create_body(name=name, phone=phone, email=email, attributes=attributes)
        return await self._c._send(Contact, "POST", "/v1/contacts", json)

    async def get(self, contact_id: ID) -> Contact:
        return await self._c._get(Contact, f"/v1/contacts/{contact_id}")

    def list(self, *, limit: int | None = None) -> AsyncPager[Contact]:
        """Contacts, newest first."""
        return self._c._pager(Contact, "/v1/contacts", limit=limit)

    async def update(
        self,
        contact_id: ID,
        *,
        name: str | NotGiven | None = NOT_GIVEN,
        phone: str | NotGiven | None = NOT_GIVEN,
        email: str | NotGiven | None = NOT_GIVEN,
        attributes: Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
    ) -> Contact:
        """Change the fields given (None clears one)."""
        json = base.body(name=name, phone=phone, email=email, attributes=attributes)
        return await self._c._send(Contact, "PATCH", f"/v1/contacts/{contact_id}", json)

    async def delete(self, contact_id: ID) -> None:
        """Delete a contact and all of theirs (identities, conversations, messages)."""
        await self._c.request("DELETE", f"/v1/contacts/{contact_id}")

    async def merge(self, contact_id: ID, *, from_contact_id: ID) -> Contact:
        """Merge ``from_contact_id`` into ``contact_id``; answers the surviving contact."""
        json = base.body(from_contact_id=from_contact_id)
        return await self._c._send(Contact, "POST", f"/v1/contacts/{contact_id}/merge", json)

    async def export(self, contact_id: ID) -> dict[str, Any]:
        """Everything stored about the contact (GDPR access), as JSON."""
        return await self._c._get(dict[str, Any], f"/v1/contacts/{contact_id}/export")

    async def erase(self, contact_id: ID) -> dict[str, Any]:
        """Erase the contact's personal data: bodies, attachments, embeddings, search entries."""
        return await self._c._send(dict[str, Any], "POST", f"/v1/contacts/{contact_id}/erase")


class AsyncConversations(_Resource):
    async def create(
        self,
        *,
        contact_id: ID | None = None,
        contact: Mapping[str, Any] | None = None,
        channel: str | None = None,
        inbox_id: ID | None = None,
        title: str | None = None,
        assignee_id: ID | None = None,
        external_conversation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Conversation:
        """Start a conversation with ``contact_id``, or with ``contact`` {name, phone, email}
        (found by phone, then email, else created)."""
        json = base.create_body(
            contact_id=contact_id,
            contact=contact,
            channel=channel,
            inbox_id=inbox_id,
            title=title,
            assignee_id=assignee_id,
            external_conversation_id=external_conversation_id,
            metadata=metadata,
        )
        return await self._c._send(Conversation, "POST", "/v1/conversations", json)

    async def get(
        self, conversation_id: ID, *, include: Sequence[Literal["messages", "events"]] = ()
    ) -> Conversation:
        """A conversation; ``include`` adds its newest messages and/or first events."""
        path = f"/v1/conversations/{conversation_id}"
        return await self._c._get(Conversation, path, include=list(include) or None)

    def list(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        contact_id: ID | None = None,
        inbox_id: ID | None = None,
        assignee_id: ID | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Conversation]:
        """Conversations, most recent activity first, filtered by exact matches."""
        return self._c._pager(
            Conversation,
            "/v1/conversations",
            status=status,
            channel=channel,
            contact_id=contact_id,
            inbox_id=inbox_id,
            assignee_id=assignee_id,
            limit=limit,
        )

    async def update(
        self,
        conversation_id: ID,
        *,
        status: str | NotGiven = NOT_GIVEN,
        title: str | NotGiven | None = NOT_GIVEN,
        assignee_id: ID | NotGiven | None = NOT_GIVEN,
        metadata: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    ) -> Conversation:
        """Change the fields given; a forbidden status change raises ``InvalidTransition``."""
        json = base.body(status=status, title=title, assignee_id=assignee_id, metadata=metadata)
        return await self._c._send(
            Conversation, "PATCH", f"/v1/conversations/{conversation_id}", json
        )

    def events(self, conversation_id: ID, *, limit: int | None = None) -> AsyncPager[Event]:
        """The conversation's audit trail, in the order it happened."""
        return self._c._pager(Event, f"/v1/conversations/{conversation_id}/events", limit=limit)

    async def context(
        self,
        conversation_id: ID,
        *,
        format: Literal["openai", "anthropic", "langchain"] = "openai",
        max_tokens: int | None = None,
        model: str | None = None,
        recall: int | None = None,
    ) -> Context:
        """The LLM-ready window: recent messages within ``max_tokens``, with the summary."""
        return await self._c._get(
            Context,
            f"/v1/conversations/{conversation_id}/context",
            format=format,
            max_tokens=max_tokens,
            model=model,
            recall=recall,
        )


class AsyncMessages(_Resource):
    async def append(
        self,
        conversation_id: ID,
        *,
        role: str,
        content: str | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        external_message_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Message:
        """Append one message; it gets the conversation's next ``seq``.

        ``fields`` are the API's other message fields (``sender_type``, ``direction``,
        ``model_used``, ``occurred_at`` ...). The request carries ``idempotency_key`` (one is
        made up when not given) and every retry reuses it, so the message is stored once.
        """
        json = base.create_body(
            role=role,
            content=content,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
            name=name,
            external_message_id=external_message_id,
            metadata=metadata,
            **fields,
        )
        key = idempotency_key or base.new_idempotency_key()
        path = f"/v1/conversations/{conversation_id}/messages"
        return await self._c._send(Message, "POST", path, json, key)

    async def batch(
        self,
        conversation_id: ID,
        messages: Sequence[MessageInput | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Append many messages at once, all or nothing, under one idempotency key."""
        json = {"messages": [base.create_body(**m) for m in messages]}
        key = idempotency_key or base.new_idempotency_key()
        path = f"/v1/conversations/{conversation_id}/messages/batch"
        return (await self._c._send(Page[Message], "POST", path, json, key)).data

    def list(
        self,
        conversation_id: ID,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        latest: bool | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Message]:
        """Messages in ``seq`` order (with ``latest=True``: pages go back from the newest)."""
        return self._c._pager(
            Message,
            f"/v1/conversations/{conversation_id}/messages",
            after_seq=after_seq,
            before_seq=before_seq,
            latest=latest,
            limit=limit,
        )

    async def events(self, message_id: ID) -> builtins.list[dict[str, Any]]:
        """The message's delivery status events."""
        return (await self._c._get(Page[dict[str, Any]], f"/v1/messages/{message_id}/events")).data


class AsyncSuggestions(_Resource):
    def list(
        self,
        *,
        status: str | None = None,
        conversation_id: ID | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Suggestion]:
        """AI-drafted replies, e.g. ``status="pending"`` for the ones awaiting a decision."""
        return self._c._pager(
            Suggestion,
            "/v1/suggestions",
            status=status,
            conversation_id=conversation_id,
            limit=limit,
        )

    async def approve(self, suggestion_id: ID, *, content: str | None = None) -> Suggestion:
        """Approve (with ``content``: edit, then approve); the reply is sent."""
        json = base.create_body(content=content)
        return await self._c._send(
            Suggestion, "POST", f"/v1/suggestions/{suggestion_id}/approve", json
        )

    async def reject(self, suggestion_id: ID, *, feedback: str | None = None) -> Suggestion:
        json = base.create_body(feedback=feedback)
        return await self._c._send(
            Suggestion, "POST", f"/v1/suggestions/{suggestion_id}/reject", json
        )


class AsyncInboxes(_Resource):
    async def create(
        self,
        *,
        name: str,
        channel: str,
        provider: str,
        address: str | None = None,
        credentials: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        agent_id: ID | None = None,
        mode: str | None = None,
    ) -> Inbox:
        """Create an inbox; its ``webhooks`` are the URLs to give the provider."""
        json = base.create_body(
            name=name,
            channel=channel,
            provider=provider,
            address=address,
            credentials=credentials,
            config=config,
            agent_id=agent_id,
            mode=mode,
        )
        return await self._c._send(Inbox, "POST", "/v1/inboxes", json)

    async def get(self, inbox_id: ID) -> Inbox:
        return await self._c._get(Inbox, f"/v1/inboxes/{inbox_id}")

    def list(self, *, limit: int | None = None) -> AsyncPager[Inbox]:
        return self._c._pager(Inbox, "/v1/inboxes", limit=limit)

    async def update(self, inbox_id: ID, **fields: Any) -> Inbox:
        """Change the fields given (name, credentials, config, agent_id, mode)."""
        return await self._c._send(Inbox, "PATCH", f"/v1/inboxes/{inbox_id}", base.body(**fields))

    async def delete(self, inbox_id: ID) -> None:
        await self._c.request("DELETE", f"/v1/inboxes/{inbox_id}")


class AsyncAgents(_Resource):
    async def create(
        self,
        *,
        name: str,
        model: str | None = None,
        system_prompt: str | None = None,
        tools: Sequence[Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Agent:
        json = base.create_body(
            name=name,
            model=model,
            system_prompt=system_prompt,
            tools=tools,
            settings=settings,
            **fields,
        )
        return await self._c._send(Agent, "POST", "/v1/agents", json)

    async def get(self, agent_id: ID) -> Agent:
        return await self._c._get(Agent, f"/v1/agents/{agent_id}")

    def list(self, *, limit: int | None = None) -> AsyncPager[Agent]:
        return self._c._pager(Agent, "/v1/agents", limit=limit)

    async def update(self, agent_id: ID, **fields: Any) -> Agent:
        """Change the fields given (name, kind, model, system_prompt, tools, settings)."""
        return await self._c._send(Agent, "PATCH", f"/v1/agents/{agent_id}", base.body(**fields))

    async def preview(self, agent_id: ID, *, conversation_id: ID) -> dict[str, Any]:
        """The agent's system prompt rendered for a conversation: ``{"prompt", "missing"}``."""
        json = base.body(conversation_id=conversation_id)
        return await self._c._send(dict[str, Any], "POST", f"/v1/agents/{agent_id}/preview", json)
