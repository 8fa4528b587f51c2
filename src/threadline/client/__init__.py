"""The Python SDK of Threadline: ``Threadline`` (sync) and ``AsyncThreadline`` (async).

    from threadline.client import Threadline

    with Threadline("http://127.0.0.1:8000", api_key="tl_...") as tl:
        conv = tl.conversations.create(contact={"name": "Ada", "phone": "+14155550100"})
        tl.messages.append(conv.id, role="user", content="Hi there")
        for message in tl.messages.list(conv.id):
            print(message.seq, message.role, message.content)

Everything public is listed in ``__all__``; the rest lives in ``_private`` and may change.
``threadline.client.testing`` runs a client against an app in the same process.
"""

from threadline.client._private.async_client import AsyncThreadline
from threadline.client._private.base import NOT_GIVEN, NotGiven, RetryPolicy
from threadline.client._private.errors import (
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    DatabaseBusy,
    DatabaseReadOnly,
    DatabaseUnavailable,
    EndpointNotFound,
    IdempotencyKeyReused,
    InternalServerError,
    InvalidCursor,
    InvalidTransition,
    MigrationRequired,
    ModelNotConfigured,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    SemanticSearchUnavailable,
    ThreadlineError,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
)
from threadline.client._private.models import (
    Agent,
    Contact,
    Context,
    Conversation,
    Event,
    Inbox,
    Message,
    Page,
    SearchHit,
    SearchResults,
    Suggestion,
)
from threadline.client._private.pagination import AsyncPager, Pager
from threadline.client._private.sync_client import Threadline
from threadline.client._private.types import ID, MessageInput, SearchMode

__all__ = [  # noqa: RUF022 - plain sorted(), as the test of the public names checks
    "APIError",
    "Agent",
    "AlreadyExists",
    "AsyncPager",
    "AsyncThreadline",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Contact",
    "Context",
    "Conversation",
    "DatabaseBusy",
    "DatabaseReadOnly",
    "DatabaseUnavailable",
    "EndpointNotFound",
    "Event",
    "ID",
    "IdempotencyKeyReused",
    "Inbox",
    "InternalServerError",
    "InvalidCursor",
    "InvalidTransition",
    "Message",
    "MessageInput",
    "MigrationRequired",
    "ModelNotConfigured",
    "NOT_GIVEN",
    "NotFound",
    "NotGiven",
    "Page",
    "Pager",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "SearchHit",
    "SearchMode",
    "SearchResults",
    "SemanticSearchUnavailable",
    "Suggestion",
    "Threadline",
    "ThreadlineError",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationError",
]
