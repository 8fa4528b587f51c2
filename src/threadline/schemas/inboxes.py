"""Inboxes: one address on one channel behind one provider. Credentials go in, never out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, StringConstraints

from threadline.domain.enums import Channel, InboxMode
from threadline.schemas.common import Input, JSONObject, Output, PageQuery

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ProviderName = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=320)]
CredentialValue = Annotated[str, StringConstraints(max_length=4096)] | int | bool
Credentials = dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], CredentialValue]

_EXAMPLE: dict[str, JsonValue] = {
    "name": "Main line",
    "channel": "sms",
    "provider": "twilio",
    "address": "+14155550100",
    "credentials": {"account_sid": "AC...", "auth_token": "..."},
    "mode": "approval",
}


class InboxCreate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    name: Name | None = None
    channel: Channel | None = Field(None, description="Defaults to the provider's channel.")
    provider: ProviderName = Field(description="twilio, meta, postmark, sendgrid, smtp ...")
    address: Address = Field(description="The number, phone-number id, email address ...")
    credentials: Credentials = Field(
        default_factory=dict, description="Write-only: stored encrypted, never returned."
    )
    config: JSONObject = Field(
        default_factory=dict, description="Provider options, e.g. api_base_url."
    )
    agent_id: uuid.UUID | None = None
    mode: InboxMode = InboxMode.APPROVAL


class InboxUpdate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"mode": "auto"}]})

    name: Name | None = None
    address: Address | None = None
    credentials: (
        dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], CredentialValue | None]
        | None
    ) = Field(None, description="Merged: a name set replaces it, a name set to null removes it.")
    config: JSONObject | None = None
    agent_id: uuid.UUID | None = None
    mode: InboxMode | None = None
    is_active: bool | None = None


class InboxListQuery(PageQuery):
    """``GET /v1/inboxes``: newest first."""


class InboxRead(Output):
    id: uuid.UUID
    name: str
    channel: Channel
    provider: str
    address: str
    mode: InboxMode
    agent_id: uuid.UUID | None
    config: JSONObject
    is_active: bool
    credentials_set: list[str] = Field(
        description="Which credentials are set (never their values)."
    )
    webhooks: dict[str, str] = Field(
        description="Webhook name -> the URL to paste into the provider's console."
    )
    created_at: datetime
    updated_at: datetime


class InboxCreated(InboxRead):
    generated_credentials: dict[str, str] = Field(
        default_factory=dict,
        description="Secrets Threadline made for this inbox (webhook tokens): shown only now.",
    )
