"""Small builders shared by the channel tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from threadline.channels.base import InboxConfig, WebhookRequest
from threadline.domain.enums import Channel


def inbox(
    provider: str,
    channel: Channel,
    address: str,
    credentials: dict[str, Any],
    *,
    api_base_url: str | None = None,
    webhook_urls: dict[str, str] | None = None,
    **config: Any,
) -> InboxConfig:
    if api_base_url:
        config["api_base_url"] = api_base_url
    return InboxConfig(
        id="0190f0c1-0000-7000-8000-000000000001",
        tenant_id="0190f0c1-0000-7000-8000-0000000000aa",
        channel=channel,
        provider=provider,
        address=address,
        credentials=credentials,
        config=config,
        webhook_urls=webhook_urls or {},
    )


def request(
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    query: dict[str, str] | None = None,
) -> WebhookRequest:
    return WebhookRequest(
        method=method, url=url, headers=headers or {}, body=body, query=query or {}
    )


def twilio_signed(url: str, params: dict[str, str], auth_token: str) -> tuple[str, dict[str, str]]:
    """A webhook as Twilio sends it to ``url``: the form body and its headers, signed by the
    official SDK over ``url`` (the public URL the server checks the signature against)."""
    signature = RequestValidator(auth_token).compute_signature(url, params)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return urlencode(params), headers
