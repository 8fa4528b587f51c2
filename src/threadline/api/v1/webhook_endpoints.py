"""Outgoing webhooks: endpoints that receive the tenant's events, and their delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from threadline.api.deps import Ctx
from threadline.api.v1.params import NoQueryParams
from threadline.schemas.webhooks_out import (
    WebhookDeliveryList,
    WebhookDeliveryQuery,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointRead,
)
from threadline.store import webhooks_out

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"])
deliveries_router = APIRouter(prefix="/webhook-deliveries", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookEndpointCreated)
def create_endpoint(
    body: WebhookEndpointCreate, ctx: Ctx, _: NoQueryParams
) -> WebhookEndpointCreated:
    """Send the tenant's events from now on to `url`, signed per the Standard Webhooks spec.
    The answer holds the signing secret; it is not shown again."""
    caller = ctx.caller()
    row, secret = webhooks_out.create_endpoint(
        ctx.db,
        caller.tenant_id,
        url=str(body.url),
        event_types=body.events,
        description=body.description,
    )
    return WebhookEndpointCreated.model_validate(row | {"secret": secret})


@router.get("", response_model=WebhookEndpointList)
def list_endpoints(ctx: Ctx, _: NoQueryParams) -> WebhookEndpointList:
    """Oldest first."""
    caller = ctx.caller()
    rows = webhooks_out.list_endpoints(ctx.db, caller.tenant_id)
    return WebhookEndpointList(data=[WebhookEndpointRead.model_validate(r) for r in rows])


@router.get("/{endpoint_id}", response_model=WebhookEndpointRead)
def get_endpoint(endpoint_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> WebhookEndpointRead:
    caller = ctx.caller()
    return WebhookEndpointRead.model_validate(
        webhooks_out.get_endpoint(ctx.db, caller.tenant_id, endpoint_id)
    )


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
def delete_endpoint(endpoint_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> Response:
    """Stop sending to the endpoint; its delivery log goes with it."""
    caller = ctx.caller()
    webhooks_out.delete_endpoint(ctx.db, caller.tenant_id, endpoint_id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=WebhookDeliveryList)
def list_deliveries(
    endpoint_id: uuid.UUID, ctx: Ctx, query: Annotated[WebhookDeliveryQuery, Query()]
) -> WebhookDeliveryList:
    """The delivery log, newest event first: attempts, the last status code or error, and
    when the next attempt is due."""
    caller = ctx.caller()
    page = webhooks_out.list_deliveries(
        ctx.db, caller.tenant_id, endpoint_id, limit=query.limit, cursor=query.cursor
    )
    return WebhookDeliveryList(
        data=[WebhookDeliveryRead.model_validate(r) for r in page.items],
        next_cursor=page.next_cursor,
    )


@deliveries_router.post(
    "/{delivery_id}/redeliver", status_code=202, response_model=WebhookDeliveryRead
)
def redeliver(delivery_id: uuid.UUID, ctx: Ctx, _: NoQueryParams) -> WebhookDeliveryRead:
    """Send the event to its endpoint again now (with a fresh set of attempts)."""
    caller = ctx.caller()
    return WebhookDeliveryRead.model_validate(
        webhooks_out.redeliver(ctx.db, caller.tenant_id, delivery_id)
    )
