"""Inboxes: one address on one channel, behind one provider, with its sealed credentials.

An inbox names a provider of the channels registry; creating one checks that the provider
exists and serves the channel, that every credential the provider requires is given, and
makes the ones it generates itself (a URL secret, a shared webhook token), which are shown
once. Credentials are sealed at rest (``store/secrets.py``) and never leave the server:
reads say which are set (``credentials_set``), never their values.

The webhooks of an inbox are ``{public_url}/webhooks/{provider}/{inbox_id}/{name}``, plus
``/{secret}`` for the webhooks of providers that cannot sign (SendGrid Inbound Parse): the
secret is a credential, so the full URL is shown when it is made (on create, or when a
PATCH changes it) and masked on later reads.

``config_for`` is how the rest of the server (webhook routes, the delivery worker, the SMTP
receiver) sees an inbox: a ``channels.base.InboxConfig`` with decrypted credentials.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from threadline.channels import registry
from threadline.channels.addresses import e164, email_address
from threadline.channels.base import InboxConfig, Provider
from threadline.domain.enums import Channel, InboxMode
from threadline.domain.errors import AlreadyExists, InvalidInput, NotFound
from threadline.settings import Settings
from threadline.store import pagination, secrets
from threadline.store.database import Database
from threadline.store.models import Agent, Inbox
from threadline.store.owned import owned
from threadline.store.types import utcnow

#: What a masked URL secret looks like on reads.
MASK = "{secret}"


@dataclass(frozen=True)
class InboxView:
    """An inbox as the API and CLI show it: no credential values."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    channel: Channel
    provider: str
    address: str
    mode: InboxMode
    agent_id: uuid.UUID | None
    config: dict[str, Any]
    is_active: bool
    credentials_set: list[str]
    webhooks: dict[str, str]
    created_at: datetime
    updated_at: datetime
    #: Credentials made by the server in this request, shown only now.
    generated_credentials: dict[str, str] = field(default_factory=dict)


# --- settings the store needs ---------------------------------------------------------------

_bound: weakref.WeakKeyDictionary[Database, Settings] = weakref.WeakKeyDictionary()


def bind(db: Database, settings: Settings) -> None:
    """Tell ``config_for`` which settings (public URL, secret key) go with ``db``."""
    _bound[db] = settings


def _settings(db: Database, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    found = _bound.get(db)
    if found is None:  # a caller outside the app (a script): the environment's settings
        found = _bound[db] = Settings()
    return found


# --- shaping --------------------------------------------------------------------------------


def provider_for(name: str) -> Provider:
    return registry.get(name)


def webhook_urls(
    settings: Settings,
    provider: Provider,
    inbox_id: uuid.UUID,
    credentials: Mapping[str, Any],
    *,
    reveal: bool = True,
) -> dict[str, str]:
    """Webhook name -> the absolute URL the provider is told to call."""
    base = settings.public_url.rstrip("/")
    secret_name = getattr(provider, "url_secret_credential", None)
    out: dict[str, str] = {}
    for name in provider.webhook_names:
        url = f"{base}/webhooks/{provider.name}/{inbox_id}/{name}"
        if name in provider.url_secret_webhooks and secret_name:
            secret = credentials.get(secret_name)
            url += "/" + (str(secret) if reveal and secret else MASK)
        out[name] = url
    return out


def normalize_address(channel: Channel, address: str, region: str | None) -> str:
    text = address.strip()
    if not text:
        raise InvalidInput("address must not be empty")
    if channel == Channel.SMS:
        phone = e164(text, region)
        if phone is None:
            raise InvalidInput("an sms inbox's address is its phone number", address=address)
        return phone
    if channel == Channel.EMAIL:
        mail = email_address(text)
        if mail is None:
            raise InvalidInput("an email inbox's address is an email address", address=address)
        return mail
    return text


def _view(
    row: Inbox,
    settings: Settings,
    credentials: Mapping[str, Any],
    *,
    reveal: frozenset[str] = frozenset(),
    generated: Mapping[str, str] | None = None,
) -> InboxView:
    try:
        provider: Provider | None = provider_for(row.provider)
    except InvalidInput:  # an inbox carried over from before its provider existed
        provider = None
    secret_name = getattr(provider, "url_secret_credential", None)
    hooks = (
        webhook_urls(settings, provider, row.id, credentials, reveal=secret_name in reveal)
        if provider is not None
        else {}
    )
    return InboxView(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        channel=row.channel,
        provider=row.provider,
        address=row.address,
        mode=row.mode,
        agent_id=row.agent_id,
        config=dict(row.settings or {}),
        is_active=row.is_active,
        credentials_set=sorted(k for k, v in credentials.items() if v not in (None, "")),
        webhooks=hooks,
        created_at=row.created_at,
        updated_at=row.updated_at,
        generated_credentials=dict(generated or {}),
    )


def _clean_credentials(values: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if value is None or value == "":
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInput("credential values are strings or numbers", credential=key)
        out[str(key)] = value
    return out


def _missing(provider: Provider, credentials: Mapping[str, Any]) -> list[str]:
    return [c for c in provider.required_credentials if credentials.get(c) in (None, "")]


# --- writes ---------------------------------------------------------------------------------


def create(
    db: Database, settings: Settings, tenant_id: uuid.UUID, fields: Mapping[str, Any]
) -> InboxView:
    """Create an inbox; ``generated_credentials`` of the answer holds the secrets made now."""
    provider = provider_for(str(fields["provider"]))
    channel = Channel(fields.get("channel") or provider.channel)
    if channel != provider.channel:
        raise InvalidInput(
            f"provider {provider.name!r} serves channel {provider.channel.value!r}, "
            f"not {channel.value!r}",
            provider=provider.name,
            channel=channel.value,
        )
    credentials = _clean_credentials(fields.get("credentials"))
    generated = {
        name: secrets.generate()
        for name in provider.generated_credentials
        if credentials.get(name) in (None, "")
    }
    credentials |= generated
    missing = _missing(provider, credentials)
    if missing:
        raise InvalidInput(
            f"provider {provider.name!r} needs the credentials: {', '.join(missing)}",
            missing=missing,
        )
    address = normalize_address(channel, str(fields["address"]), settings.default_phone_region)
    box = secrets.box_for(settings)
    now = utcnow()
    row = Inbox(
        tenant_id=tenant_id,
        channel=channel,
        provider=provider.name,
        name=fields.get("name") or f"{provider.name} {address}",
        address=address,
        mode=InboxMode(fields.get("mode") or InboxMode.APPROVAL),
        agent_id=fields.get("agent_id"),
        secrets_encrypted=box.seal(credentials),
        settings=dict(fields.get("config") or {}),
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    try:
        with db.write() as s:
            if row.agent_id is not None:
                owned(s, Agent, tenant_id, row.agent_id, name="agent")
            s.add(row)
            s.flush()
    except IntegrityError as exc:
        raise AlreadyExists(
            f"this tenant already has a {channel.value} inbox for {address}", address=address
        ) from exc
    reveal = frozenset(credentials)
    return _view(row, settings, credentials, reveal=reveal, generated=generated)


def update(
    db: Database,
    settings: Settings,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    fields: Mapping[str, Any],
) -> InboxView:
    """Change an inbox. ``credentials`` are merged: a name given replaces that credential,
    a name given as null removes it; ``config`` replaces the whole config."""
    box = secrets.box_for(settings)
    try:
        with db.write() as s:
            row = owned(s, Inbox, tenant_id, inbox_id, name="inbox", lock=True)
            credentials = box.open(row.secrets_encrypted)
            changed: set[str] = set()
            if fields.get("credentials") is not None:
                for key, value in fields["credentials"].items():
                    if value is None or value == "":
                        credentials.pop(key, None)
                    else:
                        credentials |= _clean_credentials({key: value})
                    changed.add(key)
                missing = _missing(provider_for(row.provider), credentials)
                if missing:
                    raise InvalidInput(
                        f"provider {row.provider!r} needs the credentials: {', '.join(missing)}",
                        missing=missing,
                    )
                row.secrets_encrypted = box.seal(credentials)
            if fields.get("name") is not None:
                row.name = fields["name"]
            if fields.get("address") is not None:
                row.address = normalize_address(
                    row.channel, fields["address"], settings.default_phone_region
                )
            if fields.get("mode") is not None:
                row.mode = InboxMode(fields["mode"])
            if "config" in fields:
                row.settings = dict(fields["config"] or {})
            if "agent_id" in fields:
                if fields["agent_id"] is not None:
                    owned(s, Agent, tenant_id, fields["agent_id"], name="agent")
                row.agent_id = fields["agent_id"]
            if fields.get("is_active") is not None:
                row.is_active = bool(fields["is_active"])
            row.updated_at = utcnow()
            s.flush()
    except IntegrityError as exc:
        raise AlreadyExists("this tenant already has an inbox for that address") from exc
    return _view(row, settings, credentials, reveal=frozenset(changed))


def delete(db: Database, tenant_id: uuid.UUID, inbox_id: uuid.UUID) -> None:
    """Delete an inbox; its conversations and messages stay (their inbox becomes null)."""
    with db.write() as s:
        s.delete(owned(s, Inbox, tenant_id, inbox_id, name="inbox"))


# --- reads ----------------------------------------------------------------------------------


def get(db: Database, settings: Settings, tenant_id: uuid.UUID, inbox_id: uuid.UUID) -> InboxView:
    with db.read() as s:
        row = owned(s, Inbox, tenant_id, inbox_id, name="inbox")
    return _view(row, settings, secrets.box_for(settings).open(row.secrets_encrypted))


def list_page(
    db: Database,
    settings: Settings,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
) -> pagination.Page[InboxView]:
    """Inboxes, newest first."""
    q = sa.select(Inbox).where(Inbox.tenant_id == tenant_id)
    with db.read() as s:
        page = pagination.newest_first(s, q, Inbox.created_at, Inbox.id, limit=limit, cursor=cursor)
    box = secrets.box_for(settings)
    views = [_view(r, settings, box.open(r.secrets_encrypted)) for r in page.items]
    return pagination.Page(views, page.next_cursor)


def _config(row: Inbox, settings: Settings) -> InboxConfig:
    credentials = secrets.box_for(settings).open(row.secrets_encrypted)
    try:
        urls = webhook_urls(settings, provider_for(row.provider), row.id, credentials)
    except InvalidInput:
        urls = {}
    return InboxConfig(
        id=str(row.id),
        tenant_id=str(row.tenant_id),
        channel=row.channel,
        provider=row.provider,
        address=row.address,
        credentials=credentials,
        config=dict(row.settings or {}),
        webhook_urls=urls,
        default_region=settings.default_phone_region,
    )


def config_for(
    db: Database,
    tenant_id: uuid.UUID,
    inbox_id: uuid.UUID,
    settings: Settings | None = None,
) -> InboxConfig:
    """The inbox as a provider sees it: decrypted credentials, full webhook URLs.

    ``NotFound`` for an id the tenant does not own. ``settings`` default to the ones the app
    bound to ``db`` (``bind``).
    """
    settings = _settings(db, settings)
    with db.read() as s:
        row = owned(s, Inbox, tenant_id, inbox_id, name="inbox")
    return _config(row, settings)


@dataclass(frozen=True)
class Located:
    """An inbox found by a webhook: its row's facts and its provider view."""

    tenant_id: uuid.UUID
    inbox_id: uuid.UUID
    channel: Channel
    config: InboxConfig


def for_webhook(
    db: Database, settings: Settings, provider_name: str, inbox_id: uuid.UUID
) -> Located:
    """The active inbox ``inbox_id`` of ``provider_name`` (any tenant), else ``NotFound``."""
    with db.read() as s:
        row = s.scalar(sa.select(Inbox).where(Inbox.id == inbox_id))
    if row is None or row.provider != provider_name or not row.is_active:
        raise NotFound("inbox not found", inbox_id=str(inbox_id))
    return Located(row.tenant_id, row.id, row.channel, _config(row, settings))


def by_address(db: Database, settings: Settings, provider_name: str, address: str) -> list[Located]:
    """The active inboxes of ``provider_name`` at ``address``, in every tenant."""
    with db.read() as s:
        rows = list(
            s.scalars(
                sa.select(Inbox).where(
                    Inbox.provider == provider_name,
                    Inbox.address == address,
                    Inbox.is_active.is_(True),
                )
            )
        )
    return [Located(r.tenant_id, r.id, r.channel, _config(r, settings)) for r in rows]
