"""Building blocks shared by every schema."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

T = TypeVar("T")

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


#: Deepest nesting accepted in a request body. Deeper JSON would be stored and then fail to
#: serialise on every later read (Pydantic stops at 255 levels), breaking the whole list.
MAX_JSON_DEPTH = 64


def _storable(value: Any, path: str = "", depth: int = 0) -> None:
    """Reject what cannot be stored and read back: NUL characters, lone surrogates, JSON nested
    deeper than ``MAX_JSON_DEPTH``, and the NaN and Infinity that Python's JSON parser lets
    through (PostgreSQL's jsonb refuses them, SQLite's JSON turns them into null)."""
    if depth > MAX_JSON_DEPTH:
        field = path.split(".")[0].split("[")[0] or "value"
        raise ValueError(f"{field} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'} is not a finite number")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path or 'value'} is not valid Unicode text") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _storable(k, path, depth + 1)
            _storable(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _storable(v, f"{path}[{i}]", depth + 1)


class Input(BaseModel):
    """Base of every request body: unknown fields are an error; text must be storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _check_text(cls, data: Any) -> Any:
        _storable(data)
        return data


class QueryParams(BaseModel):
    """Base of every query model (``Annotated[Model, Query()]``): an unknown parameter is an
    error, so a misspelt filter cannot silently widen a list."""

    model_config = ConfigDict(extra="forbid")


class NoQuery(QueryParams):
    """The query of a route that takes no parameters: any parameter is unknown (422)."""


class PageQuery(QueryParams):
    """The paging parameters of a list."""

    limit: int = Field(50, ge=1, le=200, description="Page size, 1 to 200.")
    cursor: str | None = Field(
        None, max_length=512, description="The `next_cursor` of the previous page."
    )


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 1970 and 2200")
    return value.astimezone(UTC)


#: A timezone-aware timestamp between 1970 and 2200, normalised to UTC.
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]

#: The start of an ISO 8601 date-time: a full date, then ``T`` (or a space) and the time.
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_8601(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise ValueError("must be an ISO 8601 date-time with a timezone, such as 2025-01-31T09:00:00Z")


#: A ``Timestamp`` given only as an ISO 8601 string, as the OpenAPI ``date-time`` format says:
#: for time filters in a query (``since``, ``until``), where Pydantic would otherwise read a
#: number such as ``0.5`` or ``1700000000`` as a Unix time.
IsoTimestamp = Annotated[Timestamp, BeforeValidator(_iso_8601)]

JSONObject = dict[str, Any]

#: Bounds that fit every backend's integer columns.
INT32_MAX = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Score = Annotated[float, Field(allow_inf_nan=False)]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` to get the next (null at the end)."""

    data: list[T]
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["conversation not found"])
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody
