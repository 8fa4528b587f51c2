from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, StringConstraints

from threadline.schemas.common import Input, JSONObject, Output, PageQuery

Name = Annotated[str, StringConstraints(max_length=200)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=32)]
Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]

_EXAMPLE: dict[str, JsonValue] = {
    "name": "Ada Lovelace",
    "phone": "+14155550100",
    "email": "ada@example.com",
    "attributes": {"plan": "pro"},
}


class ContactCreate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    name: Name | None = None
    phone: Phone | None = Field(None, description="International form, e.g. +14155550100.")
    email: Email | None = None
    attributes: JSONObject = Field(default_factory=dict)


class ContactUpdate(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Ada King"}]})

    name: Name | None = None
    phone: Phone | None = None
    email: Email | None = None
    attributes: JSONObject | None = None


class ContactMerge(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"from_contact_id": "0190f0c1-0000-7000-8000-000000000001"}]
        }
    )

    from_contact_id: uuid.UUID = Field(description="The duplicate: merged in, then deleted.")


class ContactListQuery(PageQuery):
    """``GET /v1/contacts``: newest first."""


class ContactRead(Output):
    id: uuid.UUID
    name: str | None
    phone: str | None
    email: str | None
    attributes: JSONObject
    created_at: datetime
    updated_at: datetime
