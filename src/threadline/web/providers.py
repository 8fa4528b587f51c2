"""What the "new inbox" form asks for, per provider, and where its webhook URLs go.

The credentials a provider requires and the ones Threadline generates come from the provider
itself (``channels.registry``), so a provider added by a package gets a working form too;
``GUIDES`` adds what only a person needs: labels, the address each provider means, optional
credentials and options, and where in the provider's console each URL is pasted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from threadline.channels import registry
from threadline.domain.enums import Channel

#: Credentials that name something rather than unlock it: shown as they are typed.
PLAIN = frozenset({"account_sid", "host", "port", "username", "event_verification_key"})

LABELS = {
    "account_sid": "Account SID",
    "auth_token": "Auth token",
    "access_token": "Access token",
    "app_secret": "App secret",
    "verify_token": "Verify token",
    "server_token": "Server API token",
    "api_key": "API key",
    "host": "SMTP host",
    "port": "Port",
    "username": "Username",
    "password": "Password",
    "event_verification_key": "Event Webhook verification key",
    "hmac_secret": "HMAC secret",
    "messaging_service_sid": "Messaging service SID",
    "api_version": "Graph API version",
    "message_stream": "Message stream",
    "from_name": "From name",
    "allowed_origins": "Allowed origins",
}


@dataclass(frozen=True)
class Guide:
    title: str
    address_label: str
    address_placeholder: str
    #: Where each webhook URL goes in the provider's console, in a sentence.
    where: str
    optional_credentials: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    #: Options given one per line (stored as a list).
    list_options: tuple[str, ...] = ()


GUIDES: dict[str, Guide] = {
    "twilio": Guide(
        "Twilio SMS",
        "Phone number",
        "+14155550100",
        "Twilio console → Phone Numbers → your number → Messaging: paste inbound under "
        "“A message comes in” (HTTP POST), and status as the status callback URL.",
        options=("messaging_service_sid",),
    ),
    "meta": Guide(
        "WhatsApp (Meta Cloud API)",
        "Phone number ID",
        "106540352242922",
        "Meta App Dashboard → WhatsApp → Configuration: inbound is the Callback URL, with the "
        "verify token you chose; subscribe to the messages field.",
        options=("api_version",),
    ),
    "postmark": Guide(
        "Postmark email",
        "Email address",
        "support@example.com",
        "Postmark → your server → the inbound stream's Settings: the inbound URL; "
        "the outbound stream's Webhooks: the events URL. Both URLs carry the webhook "
        "username and password.",
        options=("message_stream",),
    ),
    "sendgrid": Guide(
        "SendGrid email",
        "Email address",
        "support@example.com",
        "SendGrid → Settings → Inbound Parse: the inbound URL for your receiving domain; "
        "Mail Settings → Event Webhook: the events URL, with signed events on.",
        optional_credentials=("event_verification_key",),
        options=("from_name",),
    ),
    "smtp": Guide(
        "SMTP email",
        "Email address",
        "support@example.com",
        "No webhooks: threadline smtp receives the mail; point your MX record or forwarding "
        "rule at it. Replies go out through the SMTP server below.",
        optional_credentials=("port", "username", "password"),
    ),
    "zapier": Guide(
        "Yelp leads through Zapier",
        "Yelp business ID",
        "bright-home-services-sf",
        "In your Zap, a Webhooks by Zapier step POSTs each Yelp lead and message to inbound "
        "with the header X-Webhook-Token; a second Zap polls outbox for the replies.",
    ),
    "vapi": Guide(
        "Vapi voice",
        "Phone number",
        "+14155550100",
        "Vapi → your assistant → Advanced → Server URL: inbound; Server URL secret: the "
        "secret below (Vapi sends it as X-Vapi-Secret).",
        optional_credentials=("hmac_secret",),
    ),
    "retell": Guide(
        "Retell AI voice",
        "Phone number",
        "+14155550100",
        "Retell dashboard → your agent → Webhook URL: inbound. Retell signs each call with "
        "your API key.",
    ),
    "voice": Guide(
        "Other voice platform (JSON)",
        "Phone number",
        "+14155550100",
        "Have the platform POST each finished call's JSON to inbound with the header "
        "X-Webhook-Token.",
    ),
    "widget": Guide(
        "Website chat widget",
        "Website",
        "example.com",
        "Add the script tag below to your site's pages, before </body>.",
        list_options=("allowed_origins",),
    ),
}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    required: bool = False
    secret: bool = True
    multiline: bool = False


@dataclass(frozen=True)
class ProviderForm:
    name: str
    title: str
    channel: Channel
    guide: Guide
    credentials: list[Field]
    generated: list[str]
    options: list[Field] = field(default_factory=list)


def label(name: str) -> str:
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def choices() -> list[tuple[str, str]]:
    """(provider, title) for the provider picker, in registry order."""
    return [(name, _guide(name).title) for name in registry.names()]


def _guide(name: str) -> Guide:
    return GUIDES.get(name) or Guide(name, "Address", "", "Paste each URL into the provider.")


def form_for(name: str) -> ProviderForm:
    """The form of provider ``name`` (``UnknownProvider`` for a name nobody registered)."""
    provider = registry.get(name)
    guide = _guide(name)
    required = list(provider.required_credentials)
    optional = [c for c in guide.optional_credentials if c not in required]
    credentials = [
        Field(c, label(c), required=c in required, secret=c not in PLAIN)
        for c in [*required, *optional]
    ]
    options = [Field(o, label(o), secret=False) for o in guide.options]
    options += [Field(o, label(o), secret=False, multiline=True) for o in guide.list_options]
    return ProviderForm(
        name=provider.name,
        title=guide.title,
        channel=provider.channel,
        guide=guide,
        credentials=credentials,
        generated=list(provider.generated_credentials),
        options=options,
    )


def fields_from(form: ProviderForm, posted: dict[str, str]) -> dict[str, Any]:
    """``credentials`` and ``config`` for ``store.inboxes.create`` from the posted form
    (``cred_<name>`` and ``opt_<name>``); empty fields are left out."""
    credentials = {
        f.name: posted[f"cred_{f.name}"].strip()
        for f in form.credentials
        if posted.get(f"cred_{f.name}", "").strip()
    }
    config: dict[str, Any] = {}
    for f in form.options:
        value = posted.get(f"opt_{f.name}", "").strip()
        if not value:
            continue
        config[f.name] = value.split() if f.multiline else value
    return {"credentials": credentials, "config": config}


def with_basic_auth(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username:password@`` in it (how Postmark is told its webhook
    credentials), or ``url`` unchanged without them."""
    if not username or not password:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{username}:{password}@{parts.netloc}"))
