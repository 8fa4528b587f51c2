"""Building blocks shared by every schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _storable(value: Any, path: str = "") -> None:
    """Reject text no database can store: NUL characters and lone surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path or 'value'} is not valid Unicode text") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _storable(k, path)
            _storable(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _storable(v, f"{path}[{i}]")


class Input(BaseModel):
    """Base of every request body: unknown fields are an error; text must be storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _check_text(cls, data: Any) -> Any:
        _storable(data)
        return data


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 1970 and 2200")
    return value.astimezone(UTC)


#: A timezone-aware timestamp between 1970 and 2200, normalised to UTC.
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]

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
