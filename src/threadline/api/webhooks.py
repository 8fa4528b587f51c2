"""Provider webhooks: ``/webhooks/{provider}/{inbox_id}/{name}`` (and ``/{secret}`` where the
provider cannot sign). Thin: the request as the provider sent it goes to
``receive.Receiver``; its answer goes back; the slow work runs after the answer.

Signatures are checked over the public URL (``THREADLINE_PUBLIC_URL`` plus the path and
query), which is the URL the provider called, whatever proxy stands in between.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request, Response
from starlette.concurrency import run_in_threadpool

from threadline.channels.base import Headers, WebhookRequest
from threadline.receive import Receiver

router = APIRouter(prefix="/webhooks", tags=["webhooks"], include_in_schema=False)

METHODS = ["GET", "POST", "PUT"]


def public_request(request: Request, body: bytes, public_url: str) -> WebhookRequest:
    url = public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return WebhookRequest(
        method=request.method,
        url=url,
        headers=Headers(request.headers.items()),
        body=body,
        query=dict(request.query_params),
    )


async def _handle(
    request: Request,
    background: BackgroundTasks,
    provider: str,
    inbox_id: str,
    name: str,
    secret: str | None,
) -> Response:
    receiver: Receiver = request.app.state.receiver
    body = await request.body()
    hook = public_request(request, body, receiver.settings.public_url)
    answer, received = await run_in_threadpool(
        receiver.webhook, provider, inbox_id, name, secret, hook
    )
    if receiver.listeners and (received.messages or received.statuses):
        background.add_task(run_in_threadpool, receiver.after, received)
    return Response(answer.body, status_code=answer.status_code, media_type=answer.content_type)


@router.api_route("/{provider}/{inbox_id}/{name}", methods=METHODS)
async def webhook(
    request: Request, background: BackgroundTasks, provider: str, inbox_id: str, name: str
) -> Response:
    return await _handle(request, background, provider, inbox_id, name, None)


@router.api_route("/{provider}/{inbox_id}/{name}/{secret}", methods=METHODS)
async def webhook_with_secret(
    request: Request,
    background: BackgroundTasks,
    provider: str,
    inbox_id: str,
    name: str,
    secret: str,
) -> Response:
    return await _handle(request, background, provider, inbox_id, name, secret)
