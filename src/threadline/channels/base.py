"""The contract between Threadline and a messaging provider: plain data in, plain data out.

A provider module turns the provider's HTTP requests (webhooks) into normalized
``Inbound`` messages and ``StatusUpdate`` s, and a normalized ``Outbound`` message into one
call of the provider's API. It never touches the database or the web framework: the
webhook routes hand it a ``WebhookRequest`` and store what ``parse`` returns through the
ingest service; the delivery worker hands it an ``Outbound`` and an ``httpx.Client`` and
records the ``SendResult`` or the ``ProviderError``.

Order of calls for one webhook: ``verify`` (raises ``SignatureInvalid``, answered 403),
then ``parse`` (raises ``MalformedPayload``, answered 400), then the route stores the
result and answers with ``result.response``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx

from threadline.domain.enums import Channel, DeliveryStatus, Direction, MessageType
from threadline.domain.errors import MalformedPayload


class Headers(Mapping[str, str]):
    """Request headers, looked up without regard to case (``headers["x-twilio-signature"]``)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items = {k.lower(): v for k, v in pairs}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({sorted(self._items)!r})"


@dataclass(frozen=True, slots=True)
class InboxConfig:
    """One inbox as a provider sees it: its address, decrypted secrets and public webhook URLs."""

    id: str
    tenant_id: str
    channel: Channel
    provider: str
    address: str
    credentials: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: Provider options; ``api_base_url`` overrides the provider's API base for sending.
    config: Mapping[str, Any] = field(default_factory=dict)
    #: Webhook name -> the absolute public URL the provider is told to call.
    webhook_urls: Mapping[str, str] = field(default_factory=dict)
    #: Region for phone numbers written without a country code (``US``, ``GB`` ...).
    default_region: str | None = None

    def credential(self, name: str) -> str | None:
        value = self.credentials.get(name)
        return str(value) if value not in (None, "") else None

    def api_base(self, default: str) -> str:
        return str(self.config.get("api_base_url") or default).rstrip("/")


@dataclass(frozen=True, slots=True)
class FormFile:
    """One file part of a multipart form."""

    field_name: str
    filename: str | None
    content_type: str | None
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class FormData:
    fields: list[tuple[str, str]]
    files: list[FormFile]

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return default

    def as_dict(self) -> dict[str, str]:
        """First value per name."""
        out: dict[str, str] = {}
        for key, value in self.fields:
            out.setdefault(key, value)
        return out


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A provider's HTTP request, as received.

    ``url`` is the public URL the provider called (``THREADLINE_PUBLIC_URL`` plus the path
    and query), which is what signatures such as Twilio's are computed over. ``body`` is
    the raw body: signatures such as Meta's are computed over its exact bytes.
    """

    method: str
    url: str
    headers: Headers
    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPayload("the request body is not UTF-8") from exc

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedPayload("the request body is not valid JSON") from exc

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise MalformedPayload("the request body is not a JSON object")
        return data

    def form(self) -> FormData:
        """The body as a form, URL-encoded or multipart (files only in the latter)."""
        from threadline.channels.forms import parse_form

        return parse_form(self.headers.get("content-type") or "", self.body)


@dataclass(frozen=True, slots=True)
class Contact:
    """Who wrote, as far as the provider tells: E.164 phone, case-folded email."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message.

    ``url`` is where the provider serves it (Twilio media, a recording); ``provider_id`` is
    the provider's handle where there is no URL (a WhatsApp media id); ``content`` carries
    the bytes when the webhook itself did (email attachments), for the store to keep.
    """

    url: str | None = None
    content_type: str | None = None
    filename: str | None = None
    size: int | None = None
    provider_id: str | None = None
    content: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Metadata for the message's ``attachments`` JSON (never the bytes)."""
        out = {
            "url": self.url,
            "content_type": self.content_type,
            "filename": self.filename,
            "size": self.size,
        }
        if self.provider_id is not None:
            out["provider_id"] = self.provider_id
        return out


@dataclass(frozen=True, slots=True)
class Action:
    """A function the voice agent called during a call (kept as an action record)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    result: Any = None
    error: str | None = None
    #: Seconds from the start of the call, when the provider says.
    at_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message the provider delivered to us, normalized.

    ``external_message_id`` is the key that makes a retried webhook idempotent (unique per
    inbox); ``external_conversation_id`` groups messages where the provider has threads
    (a Yelp lead, a call id, an email thread root). ``direction`` is outbound only for
    messages the business itself wrote elsewhere (a Yelp reply typed on Yelp).
    """

    external_message_id: str
    from_address: str
    to_address: str
    occurred_at: datetime
    content: str = ""
    message_type: MessageType = MessageType.TEXT
    contact: Contact = field(default_factory=Contact)
    external_conversation_id: str | None = None
    content_html: str | None = None
    subject: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    channel_data: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    direction: Direction = Direction.INBOUND


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery callback for a message we sent.

    ``status`` is ``None`` for events that are worth keeping but change no delivery status
    (a click, a spam complaint); ``provider_status`` is the provider's own word.
    ``message_ref`` is our own message id when the provider echoes it back (WhatsApp
    ``biz_opaque_callback_data``, Postmark ``Metadata``, SendGrid ``custom_args``).
    """

    external_message_id: str
    status: DeliveryStatus | None
    provider_status: str
    occurred_at: datetime
    error_code: str | None = None
    error_message: str | None = None
    recipient: str | None = None
    message_ref: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What the provider expects to read back."""

    status_code: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


OK = WebhookResponse()


@dataclass(frozen=True, slots=True)
class WebhookResult:
    inbound: list[Inbound] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    response: WebhookResponse = OK


@dataclass(frozen=True, slots=True)
class Template:
    """A pre-approved message template (WhatsApp); ``components`` as the provider takes them."""

    name: str
    language: str = "en_US"
    components: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send through an inbox.

    ``idempotency_key`` is our message id: providers that echo a reference back get it, and
    email derives its ``Message-ID`` from it so a resend is recognisably the same mail.
    """

    to_address: str
    idempotency_key: str
    content: str = ""
    content_html: str | None = None
    subject: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    template: Template | None = None
    #: Email threading: the Message-ID replied to and the thread's References chain.
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    #: Where the provider posts delivery callbacks (defaults to the inbox's status webhook).
    status_callback_url: str | None = None
    #: A provider message id to reply to (WhatsApp context).
    reply_to_external_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider accepted the message. ``channel_data`` is kept on the message
    (for email: the ``Message-ID`` the mail went out with)."""

    external_message_id: str | None
    status: DeliveryStatus = DeliveryStatus.SENT
    channel_data: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """One messaging provider.

    Attributes:
        name: the ``provider`` value of an inbox (``twilio``, ``meta`` ...).
        channel: the channel its inboxes are on.
        webhook_names: the keys of the inbox's ``webhooks`` map; the route for
            ``/webhooks/{provider}/{inbox_id}/{name}`` exists for each.
        required_credentials: what ``POST /v1/inboxes`` must be given.
        generated_credentials: secrets Threadline makes itself when the inbox is created
            without them (a URL secret, a shared token).
        url_secret_webhooks: webhooks whose URL carries the secret
            (``/webhooks/{provider}/{inbox_id}/{name}/{secret}``), for providers that
            cannot sign; the secret is the credential named by ``url_secret_credential``.
    """

    name: ClassVar[str]
    channel: ClassVar[Channel]
    webhook_names: ClassVar[tuple[str, ...]]
    required_credentials: ClassVar[tuple[str, ...]]
    generated_credentials: ClassVar[tuple[str, ...]]
    url_secret_webhooks: ClassVar[tuple[str, ...]]

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        """Raise ``SignatureInvalid`` unless the request really comes from the provider."""
        ...

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        """Normalize a verified request; raise ``MalformedPayload`` for a body the provider
        would not send. Pure: the same request always gives the same result."""
        ...

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        """Make one API call; raise ``ProviderError`` (``retryable`` on timeouts, connection
        errors, 429 and 5xx; never on other 4xx)."""
        ...


def utc_from_timestamp(value: Any) -> datetime:
    """An aware UTC datetime from Unix seconds (int, float or digits)."""
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise MalformedPayload("a timestamp is not a number of seconds", value=value) from exc


def utc_from_iso(value: Any) -> datetime:
    """An aware UTC datetime from ISO 8601 (``Z`` or an offset; naive taken as UTC)."""
    if not isinstance(value, str) or not value:
        raise MalformedPayload("a timestamp is missing or not a string", value=value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedPayload("a timestamp is not ISO 8601", value=value) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)
