"""Web chat: the widget a website embeds with one script tag (served by the dashboard,
``web/routes/widget.py``).

Visitors talk to Threadline directly, so the provider has no webhooks to verify: the widget's
public endpoints store the visitor's messages through ``Ingest.append`` like any channel's.
Sending is local too: an outbound message is already where the visitor reads it (their
history and live stream), so ``send`` makes no call and reports it delivered.

An inbox's ``address`` names the site (``example.com``); its ``config.allowed_origins`` lists
the origins whose pages may open visitor sessions (``["https://example.com"]``).
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from threadline.channels.base import (
    InboxConfig,
    Outbound,
    SendResult,
    WebhookRequest,
    WebhookResult,
)
from threadline.domain.enums import Channel, DeliveryStatus
from threadline.domain.errors import SignatureInvalid


class Widget:
    name: ClassVar[str] = "widget"
    channel: ClassVar[Channel] = Channel.WEBCHAT
    webhook_names: ClassVar[tuple[str, ...]] = ()
    required_credentials: ClassVar[tuple[str, ...]] = ()
    generated_credentials: ClassVar[tuple[str, ...]] = ()
    url_secret_webhooks: ClassVar[tuple[str, ...]] = ()

    def verify(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> None:
        raise SignatureInvalid("web chat has no webhooks", provider=self.name)

    def parse(self, name: str, request: WebhookRequest, inbox: InboxConfig) -> WebhookResult:
        raise SignatureInvalid("web chat has no webhooks", provider=self.name)

    def send(self, outbound: Outbound, inbox: InboxConfig, client: httpx.Client) -> SendResult:
        return SendResult(external_message_id=None, status=DeliveryStatus.DELIVERED)
