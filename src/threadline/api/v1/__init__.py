"""Version 1 of the REST API: one router module per resource."""

from fastapi import APIRouter

from threadline.api.v1 import (
    agents,
    analytics,
    contacts,
    context,
    conversations,
    events,
    inboxes,
    message_events,
    messages,
    privacy,
    replies,
    search,
    suggestions,
    webhook_endpoints,
)
from threadline.schemas.common import ErrorResponse

_ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON or an invalid cursor",
        401: "Missing, unknown or revoked API key",
        404: "Not found (also for another tenant's ids)",
        413: "Body or content over the size limit",
        415: "The body is not JSON",
        422: "The body or query breaks a rule",
    }.items()
}

router = APIRouter(prefix="/v1", responses=_ERRORS)  # type: ignore[arg-type]
# The hottest routes first: a request is matched against the routes in order.
router.include_router(messages.router)
router.include_router(conversations.router)
router.include_router(contacts.router)
router.include_router(privacy.router)
router.include_router(inboxes.router)
router.include_router(message_events.router)
router.include_router(context.router)
router.include_router(agents.router)
router.include_router(replies.router)
router.include_router(suggestions.router)
router.include_router(analytics.router)
router.include_router(search.router)
router.include_router(events.router)
router.include_router(webhook_endpoints.router)
router.include_router(webhook_endpoints.deliveries_router)
